//! WeCom (企业微信) group robot: markdown messages.

use serde_json::json;

use super::{post_json, robot_answer, NotifyError, Outgoing};

pub struct WeCom {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
}

impl WeCom {
    /// Markdown cannot @-mention by mobile number, so the people concerned are named in a
    /// last line instead.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<String, NotifyError> {
        let mut content = out.message.markdown.clone();
        if !out.recipients.is_empty() {
            let names: Vec<String> = out
                .recipients
                .iter()
                .map(|m| match &m.phone {
                    Some(p) => format!("{} {p}", m.name),
                    None => m.name.clone(),
                })
                .collect();
            content.push_str(&format!("\n\n> 值班 / on duty: {}", names.join("，")));
        }
        let body = json!({"msgtype": "markdown", "markdown": {"content": content}});
        robot_answer(post_json(&self.http, &self.url, &Default::default(), &body).await?)
    }
}
