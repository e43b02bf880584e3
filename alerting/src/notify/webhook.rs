//! Generic JSON webhook.

use std::collections::BTreeMap;

use serde_json::json;

use super::{post_json, NotifyError, Outgoing};

pub struct Webhook {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) headers: BTreeMap<String, String>,
}

impl Webhook {
    /// POSTs `{source, notification_ids, title, text, recipients, notices}`; any 2xx is delivered.
    /// `notification_ids` lets a receiver drop a repeat (after a crash between sending and
    /// recording the send).
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let recipients: Vec<_> = out
            .recipients
            .iter()
            .map(|m| json!({"id": m.id, "name": m.name, "phone": m.phone, "email": m.email}))
            .collect();
        let body = json!({
            "source": "tidewatch",
            "notification_ids": out.ids,
            "title": out.message.title,
            "text": out.message.text,
            "recipients": recipients,
            "notices": out.notices,
        });
        post_json(&self.http, &self.url, &self.headers, &body).await
    }
}
