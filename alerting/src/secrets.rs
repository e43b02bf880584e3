//! Secrets never leave in logs, API answers, metrics or error messages.
//!
//! Robot webhooks carry their credential in the URL (`access_token=`, `key=`), DingTalk
//! signs with `timestamp=…&sign=…`, database URLs carry passwords (`user:password@`,
//! `?password=`); HTTP client errors quote the URL they failed on. Every text that may hold
//! one passes through [`redact`] before it is logged, stored or answered.

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] =
    &["access_token", "token", "key", "secret", "sign", "password", "passwd", "pwd", "api_key", "apikey", "auth"];

/// `text` with URL passwords and credential query parameters replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // user:password@ after a scheme.
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ', ')', '"', '\'', '\n']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    redact_params(&out)
}

/// `name=value` with a secret name, after `?`, `&` or `;`, gets `***` for its value.
fn redact_params(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'?' | b'&' | b';') {
            let start = i + 1;
            let name_end = text[start..].find('=').map(|n| start + n);
            if let Some(eq) = name_end {
                let name = &text[start..eq];
                if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    let value_end = text[eq + 1..]
                        .find(['&', ' ', ')', '"', '\'', '\n', '#', ';', ','])
                        .map_or(text.len(), |n| eq + 1 + n);
                    out.push_str(&text[copied..eq + 1]);
                    out.push_str("***");
                    copied = value_end;
                    i = value_end;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_in_urls_and_messages_are_masked() {
        assert_eq!(
            redact("error sending request for url (https://oapi.dingtalk.com/robot/send?access_token=0123abcd&timestamp=1&sign=Zx%2B9): timed out"),
            "error sending request for url (https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=***): timed out"
        );
        assert_eq!(redact("postgres://tw:S3cret!@db.example.cn/tw"), "postgres://tw:***@db.example.cn/tw");
        assert_eq!(
            redact("postgres://tw@db/tw?sslmode=require&password=S3cret"),
            "postgres://tw@db/tw?sslmode=require&password=***"
        );
        assert_eq!(
            redact("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K3Y"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
        // Nothing secret: unchanged.
        let plain = "HTTP 500: down for the test (http://127.0.0.1:8080/hook?x=1)";
        assert_eq!(redact(plain), plain);
        assert_eq!(redact("mqtt://user@host:1883"), "mqtt://user@host:1883");
    }
}
