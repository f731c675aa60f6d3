//! A device label from a user agent: the browser family and the operating system, without
//! versions, so that a browser or system update is the same device.
//!
//! Parsed with [woothee](https://crates.io/crates/woothee): its rules are compiled into the
//! crate (no data file to load or keep up to date at run time), a parse takes a few
//! microseconds (the ua-parser ports take hundreds, and a few hundred milliseconds to
//! build their parser), and it tells apart the browser families and systems that a sign-in
//! page sees. It knows fewer device models than ua-parser's regexes, which a label without
//! models does not need.

/// The device label of `user_agent`, such as `Firefox on Linux`, `Safari on iOS` or
/// `Chrome on Windows` (or what a client that is no browser calls itself in woothee's
/// words, such as `HTTP Library` for curl); `None` when nothing is recognised.
///
/// ```
/// use trackable_core::device_label;
///
/// let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// assert_eq!(device_label(firefox).as_deref(), Some("Firefox on Linux"));
/// let updated = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
/// assert_eq!(device_label(updated), device_label(firefox));
/// assert_eq!(device_label("curl/8.5.0").as_deref(), Some("HTTP Library"));
/// assert_eq!(device_label("tests/1.0"), None);
/// ```
pub fn device_label(user_agent: &str) -> Option<String> {
    let parsed = woothee::parser::Parser::new().parse(user_agent)?;
    let known = |name: &str| !name.is_empty() && name != "UNKNOWN";
    let browser = Some(parsed.name).filter(|name| known(name));
    let os = Some(parsed.os).filter(|os| known(os)).map(system);
    match (browser, os) {
        (Some(browser), Some(os)) => Some(format!("{browser} on {os}")),
        (Some(browser), None) => Some(browser.to_owned()),
        (None, Some(os)) => Some(os.to_owned()),
        (None, None) => None,
    }
}

/// The system family of woothee's `os`, without its version.
fn system(os: &str) -> &str {
    match os {
        "Mac OSX" => "macOS",
        "iPhone" | "iPad" | "iPod" => "iOS",
        "Windows Phone OS" => "Windows Phone",
        windows if windows.starts_with("Windows ") => "Windows",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real user agents, and the label each must get.
    const AGENTS: &[(&str, Option<&str>)] = &[
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            Some("Chrome on Windows"),
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
            Some("Chrome on Windows"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            Some("Edge on Windows"),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            Some("Safari on macOS"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            Some("Safari on iOS"),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
            Some("Safari on iOS"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
            Some("Chrome on Android"),
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
            Some("Firefox on Linux"),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
            Some("Firefox on macOS"),
        ),
        ("curl/8.5.0", Some("HTTP Library")),
        ("tests/1.0", None),
        ("", None),
    ];

    #[test]
    fn real_user_agents_get_their_label() {
        for (agent, label) in AGENTS {
            assert_eq!(device_label(agent).as_deref(), *label, "{agent}");
        }
    }

    #[test]
    fn an_update_of_the_browser_or_the_system_is_the_same_device() {
        let pairs = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            ),
        ];
        for (before, after) in pairs {
            assert!(device_label(before).is_some(), "{before}");
            assert_eq!(device_label(before), device_label(after));
        }
    }
}
