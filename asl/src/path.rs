//! The JSONPath subset we accept: `$`, `$.a.b`, `$.a[0]`, `$['a']`, and the
//! context object paths listed in [`CONTEXT_PATHS`]. Everything else
//! (wildcards, filters, slices, unions, `..`) is refused when the definition is
//! loaded, so a path that parses here always means what it means in Step
//! Functions.

use std::fmt;

use serde_json::{Map, Value};

/// The `$$.` paths the runner fills in. Anything below `Execution.Input` is
/// allowed too, since that is user data.
pub(crate) const CONTEXT_PATHS: &[(&str, &str)] = &[
    ("Execution", "Id"),
    ("Execution", "Name"),
    ("Execution", "Input"),
    ("Execution", "StartTime"),
    ("State", "Name"),
    ("State", "EnteredTime"),
    ("State", "RetryCount"),
    ("StateMachine", "Id"),
    ("StateMachine", "Name"),
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    /// `$$` (the context object) rather than `$` (the state's data).
    context: bool,
    segments: Vec<Segment>,
    text: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// `$`: the whole input.
    pub(crate) fn root() -> Path {
        Path { context: false, segments: Vec::new(), text: "$".into() }
    }

    /// Parses a path that reads data (`$...` or `$$...`).
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = match text.strip_prefix("$$") {
            Some(rest) => (true, rest),
            None => match text.strip_prefix('$') {
                Some(rest) => (false, rest),
                None => return Err(format!("`{text}` is not a JSONPath (it must start with `$`)")),
            },
        };
        let segments = parse_segments(rest).map_err(|e| format!("JSONPath `{text}`: {e}"))?;
        let path = Path { context, segments, text: text.to_string() };
        if context {
            path.check_context()?;
        }
        Ok(path)
    }

    /// Parses a reference path as used by ResultPath: `$` or a chain of field
    /// names, never the context object. Array indexes are refused because
    /// growing arrays has no Step Functions equivalent worth copying.
    pub(crate) fn parse_reference(text: &str) -> Result<Path, String> {
        let path = Path::parse(text)?;
        if path.context {
            return Err(format!("`{text}` cannot write to the context object"));
        }
        if path.segments.iter().any(|s| matches!(s, Segment::Index(_))) {
            return Err(format!("`{text}`: array indexes are not supported in a ResultPath"));
        }
        Ok(path)
    }

    fn check_context(&self) -> Result<(), String> {
        let supported =
            || CONTEXT_PATHS.iter().map(|(a, b)| format!("$$.{a}.{b}")).collect::<Vec<_>>().join(", ");
        let (first, second) = match self.segments.as_slice() {
            [Segment::Field(a), Segment::Field(b), ..] => (a.as_str(), b.as_str()),
            _ => {
                return Err(format!(
                    "context path `{}` is not supported (supported: {})",
                    self.text,
                    supported()
                ));
            }
        };
        let known = CONTEXT_PATHS.iter().any(|(a, b)| *a == first && *b == second);
        let deeper_ok = self.segments.len() == 2 || (first == "Execution" && second == "Input");
        if known && deeper_ok {
            Ok(())
        } else {
            Err(format!("context path `{}` is not supported (supported: {})", self.text, supported()))
        }
    }

    /// Selects the value the path points at, reading `$` from `input` and
    /// `$$` from `context`. `None` when any step does not exist.
    pub(crate) fn select<'a>(&self, input: &'a Value, context: &'a Value) -> Option<&'a Value> {
        let mut current = if self.context { context } else { input };
        for segment in &self.segments {
            current = match segment {
                Segment::Field(name) => current.as_object()?.get(name)?,
                Segment::Index(i) => current.as_array()?.get(*i)?,
            };
        }
        Some(current)
    }
}

/// Places `result` into `input` at a reference path (ResultPath semantics):
/// `$` replaces the input, `$.a.b` creates missing objects on the way.
pub(crate) fn put(input: Value, path: &Path, result: Value) -> Result<Value, String> {
    let Some((last, parents)) = path.segments.split_last() else {
        return Ok(result);
    };
    let mut root = input;
    let not_object =
        || format!("unable to apply ResultPath `{path}`: the value it writes into is not a JSON object");
    let mut current = &mut root;
    for segment in parents {
        let Segment::Field(name) = segment else { return Err(not_object()) };
        current = current
            .as_object_mut()
            .ok_or_else(not_object)?
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Segment::Field(name) = last else { return Err(not_object()) };
    current.as_object_mut().ok_or_else(not_object)?.insert(name.clone(), result);
    Ok(root)
}

fn parse_segments(rest: &str) -> Result<Vec<Segment>, String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return Err("recursive descent `..` is not supported".into());
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() {
                    return Err("empty field name".into());
                }
                if name == "*" {
                    return Err("wildcards are not supported".into());
                }
                if let Some(c) = name.chars().find(|c| "*?@()',\"]".contains(*c) || c.is_whitespace()) {
                    return Err(format!(
                        "character `{c}` in field `{name}` is not supported; use ['...'] for unusual names"
                    ));
                }
                segments.push(Segment::Field(name));
            }
            '[' => {
                i += 1;
                match chars.get(i) {
                    Some(&quote @ ('\'' | '"')) => {
                        // A backslash is an ordinary character here: `$['a\\b']`
                        // names the key `a\\b`, and nothing escapes the quote.
                        i += 1;
                        let mut name = String::new();
                        loop {
                            match chars.get(i) {
                                None => return Err("unterminated quoted field name".into()),
                                Some(c) if *c == quote => {
                                    i += 1;
                                    break;
                                }
                                Some(c) => {
                                    name.push(*c);
                                    i += 1;
                                }
                            }
                        }
                        if chars.get(i) != Some(&']') {
                            return Err(
                                "expected `]` after a quoted field name (unions are not supported)".into()
                            );
                        }
                        i += 1;
                        segments.push(Segment::Field(name));
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        if i == chars.len() {
                            return Err("missing `]`".into());
                        }
                        let inner: String = chars[start..i].iter().collect();
                        i += 1;
                        segments.push(Segment::Index(parse_index(inner.trim())?));
                    }
                }
            }
            c => return Err(format!("unexpected character `{c}`")),
        }
    }
    Ok(segments)
}

fn parse_index(inner: &str) -> Result<usize, String> {
    if inner == "*" {
        return Err("wildcards are not supported".into());
    }
    if inner.starts_with('?') {
        return Err("filter expressions are not supported".into());
    }
    if inner.starts_with('(') {
        return Err("script expressions are not supported".into());
    }
    if inner.contains(':') {
        return Err("array slices are not supported".into());
    }
    if inner.contains(',') {
        return Err("unions are not supported".into());
    }
    if inner.starts_with('-') {
        return Err("negative array indexes are not supported".into());
    }
    if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`[{inner}]` is not an array index"));
    }
    inner.parse().map_err(|_| format!("array index `{inner}` is too large"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sel(path: &str, input: &Value) -> Option<Value> {
        Path::parse(path).unwrap().select(input, &json!({"State": {"Name": "S"}})).cloned()
    }

    #[test]
    fn selects_fields_indexes_and_quoted_names() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "odd key": 1, "it's": 2});
        assert_eq!(sel("$", &input), Some(input.clone()));
        assert_eq!(sel("$.a.b[0]", &input), Some(json!(10)));
        assert_eq!(sel("$.a.b[1].c", &input), Some(json!("x")));
        assert_eq!(sel("$['a']['b'][1]['c']", &input), Some(json!("x")));
        assert_eq!(sel("$[\"odd key\"]", &input), Some(json!(1)));
        assert_eq!(sel("$[\"it's\"]", &input), Some(json!(2)));
        assert_eq!(sel("$.a.b[2]", &input), None);
        assert_eq!(sel("$.missing", &input), None);
        assert_eq!(sel("$.a.b.c", &input), None);
        assert_eq!(sel("$$.State.Name", &input), Some(json!("S")));
    }

    /// A backslash inside a quoted name is literal: LocalStack's
    /// tests/aws/services/stepfunctions/v2/scenarios/test_base_scenarios.py::
    /// test_escape_sequence_parsing[ESCAPE_SEQUENCES_JSONPATH] (validated)
    /// reads the key `Test\""Name"` with `$['Test\""Name"']`. So `\'` does
    /// not escape the quote either.
    #[test]
    fn backslash_in_a_quoted_name_is_literal() {
        let input = json!({r#"Test\""Name""#: "Value\"\\", "a\\b": 1, "a\\": 2});
        assert_eq!(sel(r#"$['Test\""Name"']"#, &input), Some(json!("Value\"\\")));
        assert_eq!(sel(r"$['a\b']", &input), Some(json!(1)));
        assert_eq!(sel(r#"$["a\b"]"#, &input), Some(json!(1)));
        assert_eq!(sel(r"$['a\']", &input), Some(json!(2)));
        let err = Path::parse(r"$['it\'s']").unwrap_err();
        assert!(err.contains("expected `]`"), "{err}");
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for (path, msg) in [
            ("a.b", "must start with `$`"),
            ("$..a", "recursive descent"),
            ("$.a.*", "wildcards"),
            ("$.a[*]", "wildcards"),
            ("$.a[?(@.x == 1)]", "filter expressions"),
            ("$.a[0:2]", "slices"),
            ("$.a[0,1]", "unions"),
            ("$.a[-1]", "negative"),
            ("$.a.", "empty field name"),
            ("$.a[0", "missing `]`"),
            ("$a", "unexpected character `a`"),
            ("$$.Task.Token", "context path `$$.Task.Token` is not supported"),
            ("$$", "is not supported"),
            ("$$.State.Name.x", "is not supported"),
        ] {
            let err = Path::parse(path).unwrap_err();
            assert!(err.contains(msg), "{path}: {err}");
        }
        assert!(Path::parse("$$.Execution.Input.customer.id").is_ok());
    }

    #[test]
    fn reference_paths_are_plain_field_chains() {
        assert!(Path::parse_reference("$.a.b").is_ok());
        assert!(Path::parse_reference("$$.State.Name").unwrap_err().contains("context object"));
        assert!(Path::parse_reference("$.a[0]").unwrap_err().contains("array indexes"));
    }

    #[test]
    fn put_replaces_merges_and_creates() {
        let input = json!({"keep": 1, "a": {"x": 1}});
        assert_eq!(put(input.clone(), &Path::root(), json!(7)).unwrap(), json!(7));
        let at = Path::parse_reference("$.a.b.c").unwrap();
        assert_eq!(
            put(input.clone(), &at, json!(7)).unwrap(),
            json!({"keep": 1, "a": {"x": 1, "b": {"c": 7}}})
        );
        let over = Path::parse_reference("$.keep").unwrap();
        assert_eq!(put(input, &over, json!("new")).unwrap(), json!({"keep": "new", "a": {"x": 1}}));
        let err = put(json!({"a": 5}), &at, json!(1)).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
        assert!(put(json!("text"), &over, json!(1)).is_err());
    }
}
