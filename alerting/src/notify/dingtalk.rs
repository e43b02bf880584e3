//! DingTalk custom robot: markdown messages, @-mentions by mobile number, optional signing.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{post_json, robot_answer, NotifyError, Outgoing};

pub struct DingTalk {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) secret: Option<String>,
}

/// The `sign` parameter of a signed robot request:
/// urlencode(base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret))).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let digest = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&digest, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl DingTalk {
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let mobiles: Vec<&str> = out.recipients.iter().filter_map(|m| m.phone.as_deref()).collect();
        // The robot only highlights a mention that also appears in the text.
        let mut text = out.message.markdown.clone();
        if !mobiles.is_empty() {
            text.push_str("\n\n");
            text.push_str(&mobiles.iter().map(|m| format!("@{m}")).collect::<Vec<_>>().join(" "));
        }
        let body = json!({
            "msgtype": "markdown",
            "markdown": {"title": out.message.title, "text": text},
            "at": {"atMobiles": mobiles, "isAtAll": false},
        });
        let url = match &self.secret {
            Some(secret) => {
                let timestamp = chrono::Utc::now().timestamp_millis();
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{separator}timestamp={timestamp}&sign={}", self.url, sign(secret, timestamp))
            }
            None => self.url.clone(),
        };
        robot_answer(post_json(&self.http, &url, &Default::default(), &body).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_the_published_check_vector() {
        // ../shared/PROTOCOLS.md: timestamp 1577262236757, secret "this is secret".
        assert_eq!(super::sign("this is secret", 1577262236757), "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D");
    }
}
