//! Colours for people: the ✔ / ✘ / ⚠ marks green, red and yellow when
//! standard output is a terminal and `NO_COLOR` is not set
//! (<https://no-color.org>). `--json` and pipes get plain text.

use std::io::IsTerminal;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Whether this process's output should be coloured.
pub fn wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` with each mark coloured when `colours`, unchanged otherwise.
pub fn marks(text: &str, colours: bool) -> String {
    if !colours {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '✔' => out.push_str(&format!("{GREEN}✔{RESET}")),
            '✘' => out.push_str(&format!("{RED}✘{RESET}")),
            '⚠' => out.push_str(&format!("{YELLOW}⚠{RESET}")),
            other => out.push(other),
        }
    }
    out
}

/// Prints `text` (already ending in a newline) for people.
pub fn print(text: &str) {
    print!("{}", marks(text, wanted()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_coloured_only_when_asked() {
        let text = "✔ a\n✘ b\n⚠ c — fine\n";
        assert_eq!(marks(text, false), text);
        let coloured = marks(text, true);
        assert_eq!(coloured, "\x1b[32m✔\x1b[0m a\n\x1b[31m✘\x1b[0m b\n\x1b[33m⚠\x1b[0m c — fine\n");
    }
}
