//! An error told with its causes, for messages. A request's error says
//! "error sending request" and no more; what happened ("tcp connect error:
//! Connection refused (os error 111)") is in its causes.

/// `err` and its causes, joined by `: `; a cause the text already holds is
/// not said again.
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// A request's error with its causes, without its URL: a registry's upload
/// URL carries its session, a remote cache's may carry a token.
pub fn of_request(e: reqwest::Error) -> String {
    with_causes(&e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_told_without_the_url() {
        // A port nothing listens on: bound, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v2/uploads/secret-session-id");
        crate::oci::registry::install_crypto_provider();
        let e = reqwest::blocking::get(&url).unwrap_err();
        let told = of_request(e);
        assert!(told.contains("Connection refused"), "{told}");
        assert!(!told.contains("secret-session-id"), "{told}");
        assert!(!told.contains("<url>"), "{told}");
    }

    /// An error that says its cause in its own text, as many do.
    #[derive(Debug)]
    struct Saying(std::io::Error);

    impl std::fmt::Display for Saying {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "writing the blob: {}", self.0)
        }
    }

    impl std::error::Error for Saying {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_the_text_already_holds_is_said_once() {
        let said = Saying(std::io::Error::other("disk full"));
        assert_eq!(with_causes(&said), "writing the blob: disk full");
        let quiet = reqwest_like();
        assert_eq!(with_causes(&quiet), "error sending request: disk full");
    }

    /// An error that leaves its cause to be told.
    fn reqwest_like() -> impl std::error::Error {
        #[derive(Debug)]
        struct Quiet(std::io::Error);
        impl std::fmt::Display for Quiet {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Quiet {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        Quiet(std::io::Error::other("disk full"))
    }
}
