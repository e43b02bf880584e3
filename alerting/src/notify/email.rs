//! E-mail over SMTP (lettre).

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{ChannelConfig, NotifyError, Outgoing, SmtpTls};

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    pub fn new(name: &str, config: &ChannelConfig, timeout: Duration) -> Result<Email, String> {
        let smtp = config.smtp.as_deref().ok_or_else(|| format!("channel {name:?} needs smtp"))?;
        let (host, port) = super::host_port("smtp", smtp).map_err(|e| format!("channel {name:?}: {e}"))?;
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| e.to_string())?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| e.to_string())?,
        };
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from = config.from.as_deref().unwrap_or_default();
        let from = from.parse().map_err(|e| format!("channel {name:?}: from {from:?}: {e}"))?;
        Ok(Email { transport: builder.build(), from })
    }

    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let mut message = Message::builder().from(self.from.clone()).subject(&out.message.title);
        let mut any = false;
        for m in out.recipients {
            let Some(address) = &m.email else { continue };
            match format!("{} <{address}>", m.name).parse::<Mailbox>() {
                Ok(mailbox) => {
                    message = message.to(mailbox);
                    any = true;
                }
                Err(e) => tracing::warn!(member = %m.id, error = %e, "skipping a bad e-mail address"),
            }
        }
        if !any {
            return Err(NotifyError::NoRecipient("an e-mail address"));
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(out.message.text.clone())
            .map_err(|e| NotifyError::Transport(e.to_string()))?;
        let response = self.transport.send(message).await.map_err(|e| NotifyError::Transport(e.to_string()))?;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}
