//! Broadcasts in text an agent posts to Slack, made inert unless the tenant allows them.
//!
//! - Slack's special commands `<!channel>`, `<!here>`, `<!everyone>` (also with a label,
//!   `<!here|here>`), user groups `<!subteam^ID>` and any other `<!…>` but dates
//!   (`<!date^…>`) are escaped as Slack's formatting rules say (`<` → `&lt;`,
//!   `>` → `&gt;`): Slack shows the text as written and notifies nobody.
//! - Plain `@channel`, `@here`, `@everyone` (any case, not inside a word such as an
//!   e-mail address) are mentions only when a post asks for `link_names`, which Nexus
//!   never does; a zero-width joiner (U+200D) after the `@` keeps them inert anyway.

use std::borrow::Cow;

/// Plain-text broadcast names, lowercase.
const PLAIN: [&str; 3] = ["channel", "here", "everyone"];
const JOINER: char = '\u{200D}';

/// `text` with every broadcast made inert; borrowed when it has none.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if !text.contains("<!") && !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let escaped = escape_commands(text);
    let out = join_plain(&escaped);
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

/// Escapes every closed `<!…>` command except dates.
fn escape_commands(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find("<!") {
        out.push_str(&rest[..i]);
        let body = &rest[i + 2..];
        // A `<` before the closing `>` starts another command: this one never closes.
        match body.find(['>', '<']) {
            Some(end) if body[end..].starts_with('>') && !body.starts_with("date^") => {
                out.push_str("&lt;!");
                out.push_str(&body[..end]);
                out.push_str("&gt;");
                rest = &body[end + 1..];
            }
            _ => {
                out.push_str("<!");
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Puts a joiner after the `@` of each plain `@channel`, `@here`, `@everyone`.
fn join_plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut last = 0;
    for (i, _) in text.match_indices('@') {
        let in_word = text[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        let after = &text[i + 1..];
        let broadcast = PLAIN.iter().any(|name| {
            after
                .get(..name.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(name))
        });
        if broadcast && !in_word {
            out.push_str(&text[last..=i]);
            out.push(JOINER);
            last = i + 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_commands_are_escaped() {
        let cases = [
            ("<!channel> ship it", "&lt;!channel&gt; ship it"),
            ("hi <!here|here>!", "hi &lt;!here|here&gt;!"),
            ("<!everyone>", "&lt;!everyone&gt;"),
            (
                "ping <!subteam^S0614TZR7>",
                "ping &lt;!subteam^S0614TZR7&gt;",
            ),
            ("<!<!channel>", "<!&lt;!channel&gt;"),
        ];
        for (text, want) in cases {
            assert_eq!(neutralise(text), want, "{text:?}");
        }
    }

    #[test]
    fn plain_broadcasts_get_a_joiner() {
        assert_eq!(
            neutralise("@here and @Channel, @everyone."),
            "@\u{200D}here and @\u{200D}Channel, @\u{200D}everyone."
        );
        assert_eq!(neutralise("<!here|@here>"), "&lt;!here|@\u{200D}here&gt;");
    }

    #[test]
    fn everything_else_is_left_as_written() {
        for text in [
            "plain text",
            "<@U024BE7LH> and <#C123|general>",
            "<!date^1392734382^{date}|Feb 18>",
            "mail ops@here.example or @AI_Squad",
            "an open <!channel without end",
            "emoji 🎉 <!",
        ] {
            assert!(matches!(neutralise(text), Cow::Borrowed(_)), "{text:?}");
        }
    }
}
