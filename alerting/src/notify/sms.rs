//! SMS through an HTTP gateway: a JSON body template, one request for all recipients.

use std::collections::BTreeMap;

use super::{post_json, NotifyError, Outgoing};

pub const DEFAULT_BODY: &str = r#"{"phones": {phones}, "text": {text}}"#;

pub struct Sms {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) body: String,
}

impl Sms {
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let phones: Vec<&str> = out.recipients.iter().filter_map(|m| m.phone.as_deref()).collect();
        if phones.is_empty() {
            return Err(NotifyError::NoRecipient("a phone number"));
        }
        let body = fill(&self.body, &phones, &out.message.text)?;
        post_json(&self.http, &self.url, &self.headers, &body).await
    }
}

/// Fills the template with JSON-encoded values, so any text is safe in it.
fn fill(template: &str, phones: &[&str], text: &str) -> Result<serde_json::Value, NotifyError> {
    let filled = template
        .replace("{phones}", &serde_json::to_string(phones).unwrap_or_default())
        .replace("{text}", &serde_json::to_string(text).unwrap_or_default());
    serde_json::from_str(&filled)
        .map_err(|e| NotifyError::Transport(format!("the sms body template is not JSON once filled: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_takes_any_text_safely() {
        let body = super::fill(super::DEFAULT_BODY, &["138", "139"], "say \"hi\"\n{text}").unwrap();
        assert_eq!(body, serde_json::json!({"phones": ["138", "139"], "text": "say \"hi\"\n{text}"}));
    }
}
