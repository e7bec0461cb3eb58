//! Choice rules: parsing (with the same strictness as Step Functions' own
//! validator) and evaluation.
//!
//! Semantics worth knowing: a comparison whose variable has the wrong type is
//! simply false, but a `Variable` (or `...Path` operand) that does not exist
//! fails the execution with `States.Runtime` — only `IsPresent` may look at a
//! missing field.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::clock;
use crate::path::Path;
use crate::template::Env;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

/// Every operator name, and whether a `...Path` variant exists.
const OPS: &[(&str, Op, bool)] = &[
    ("StringEquals", Op::StringEquals, true),
    ("StringLessThan", Op::StringLessThan, true),
    ("StringGreaterThan", Op::StringGreaterThan, true),
    ("StringLessThanEquals", Op::StringLessThanEquals, true),
    ("StringGreaterThanEquals", Op::StringGreaterThanEquals, true),
    ("StringMatches", Op::StringMatches, false),
    ("NumericEquals", Op::NumericEquals, true),
    ("NumericLessThan", Op::NumericLessThan, true),
    ("NumericGreaterThan", Op::NumericGreaterThan, true),
    ("NumericLessThanEquals", Op::NumericLessThanEquals, true),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals, true),
    ("BooleanEquals", Op::BooleanEquals, true),
    ("TimestampEquals", Op::TimestampEquals, true),
    ("TimestampLessThan", Op::TimestampLessThan, true),
    ("TimestampGreaterThan", Op::TimestampGreaterThan, true),
    ("TimestampLessThanEquals", Op::TimestampLessThanEquals, true),
    ("TimestampGreaterThanEquals", Op::TimestampGreaterThanEquals, true),
    ("IsNull", Op::IsNull, false),
    ("IsPresent", Op::IsPresent, false),
    ("IsNumeric", Op::IsNumeric, false),
    ("IsString", Op::IsString, false),
    ("IsBoolean", Op::IsBoolean, false),
    ("IsTimestamp", Op::IsTimestamp, false),
];

fn lookup(field: &str) -> Option<(Op, bool)> {
    OPS.iter().find_map(|(name, op, has_path)| {
        if field == *name {
            Some((*op, false))
        } else if *has_path && field.strip_suffix("Path") == Some(name) {
            Some((*op, true))
        } else {
            None
        }
    })
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Value(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare { variable: Path, op: Op, operand: Operand, field: String },
}

impl Rule {
    /// Parses one rule. Top-level rules must have `Next` (returned); nested
    /// ones must not.
    pub(crate) fn parse(value: &Value, top_level: bool) -> Result<(Rule, Option<String>), String> {
        let Value::Object(map) = value else {
            return Err("a choice rule must be a JSON object".into());
        };
        let next = match map.get("Next") {
            None if top_level => return Err("a choice rule needs `Next`".into()),
            None => None,
            Some(_) if !top_level => return Err("`Next` is only allowed on top-level choice rules".into()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`Next` must be a string".into()),
        };
        for key in map.keys() {
            let known = matches!(key.as_str(), "Comment" | "Next" | "And" | "Or" | "Not" | "Variable")
                || lookup(key).is_some();
            if !known {
                return Err(format!("unknown field `{key}` in a choice rule"));
            }
        }
        let combinators: Vec<&str> =
            ["And", "Or", "Not"].into_iter().filter(|k| map.contains_key(*k)).collect();
        let operators: Vec<&String> = map.keys().filter(|k| lookup(k).is_some()).collect();
        let rule = match (combinators.as_slice(), operators.as_slice()) {
            ([combinator], []) => {
                if map.contains_key("Variable") {
                    return Err(format!("`{combinator}` rules cannot have `Variable`"));
                }
                parse_combinator(combinator, map)?
            }
            ([], [field]) => parse_comparison(field, map)?,
            ([], []) => return Err("a choice rule needs a comparison operator or And/Or/Not".into()),
            _ => return Err("a choice rule must have exactly one comparison operator or And/Or/Not".into()),
        };
        Ok((rule, next))
    }

    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<bool, String> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.eval(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.eval(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.eval(env)?),
            Rule::Compare { variable, op, operand, field } => {
                let found = variable.select(env.input, env.context);
                if *op == Op::IsPresent {
                    return Ok(found.is_some() == (operand == &Operand::Value(Value::Bool(true))));
                }
                let Some(var) = found else {
                    return Err(format!(
                        "invalid path `{variable}`: the choice rule's Variable references a value that does not exist"
                    ));
                };
                let rhs = match operand {
                    Operand::Value(v) => v,
                    Operand::Path(p) => p.select(env.input, env.context).ok_or_else(|| {
                        format!("invalid path `{p}` in `{field}`: it references a value that does not exist")
                    })?,
                };
                Ok(compare(*op, var, rhs))
            }
        }
    }
}

fn parse_combinator(name: &str, map: &Map<String, Value>) -> Result<Rule, String> {
    let value = map.get(name).ok_or("missing combinator")?;
    if name == "Not" {
        let (inner, _) = Rule::parse(value, false).map_err(|e| format!("in `Not`: {e}"))?;
        return Ok(Rule::Not(Box::new(inner)));
    }
    let Value::Array(items) = value else {
        return Err(format!("`{name}` must be a non-empty array of rules"));
    };
    if items.is_empty() {
        return Err(format!("`{name}` must be a non-empty array of rules"));
    }
    let rules = items
        .iter()
        .enumerate()
        .map(|(i, v)| Rule::parse(v, false).map(|(r, _)| r).map_err(|e| format!("in `{name}[{i}]`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if name == "And" { Rule::And(rules) } else { Rule::Or(rules) })
}

fn parse_comparison(field: &str, map: &Map<String, Value>) -> Result<Rule, String> {
    let variable = match map.get("Variable") {
        Some(Value::String(s)) => Path::parse(s).map_err(|e| format!("`Variable`: {e}"))?,
        Some(_) => return Err("`Variable` must be a JSONPath string".into()),
        None => return Err(format!("`{field}` needs a `Variable`")),
    };
    let (op, is_path) = lookup(field).ok_or_else(|| format!("unknown operator `{field}`"))?;
    let value = map.get(field).ok_or("missing operator value")?;
    let operand = if is_path {
        let Value::String(s) = value else {
            return Err(format!("`{field}` must be a JSONPath string"));
        };
        Operand::Path(Path::parse(s).map_err(|e| format!("`{field}`: {e}"))?)
    } else {
        let ok = match op {
            Op::StringEquals
            | Op::StringLessThan
            | Op::StringGreaterThan
            | Op::StringLessThanEquals
            | Op::StringGreaterThanEquals
            | Op::StringMatches => value.is_string(),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericGreaterThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThanEquals => value.is_number(),
            Op::TimestampEquals
            | Op::TimestampLessThan
            | Op::TimestampGreaterThan
            | Op::TimestampLessThanEquals
            | Op::TimestampGreaterThanEquals => value.as_str().and_then(clock::parse_rfc3339).is_some(),
            Op::BooleanEquals
            | Op::IsNull
            | Op::IsPresent
            | Op::IsNumeric
            | Op::IsString
            | Op::IsBoolean
            | Op::IsTimestamp => value.is_boolean(),
        };
        if !ok {
            return Err(format!("`{field}` has a value of the wrong type: {value}"));
        }
        Operand::Value(value.clone())
    };
    Ok(Rule::Compare { variable, op, operand, field: field.to_string() })
}

/// Applies an operator; mismatched types are `false`, as in Step Functions.
fn compare(op: Op, var: &Value, rhs: &Value) -> bool {
    let ordered = |o: Option<Ordering>, want: &[Ordering]| o.is_some_and(|o| want.contains(&o));
    use Ordering::{Equal as Eq, Greater as Gt, Less as Lt};
    // Step Functions runs on Java: strings compare as `String.compareTo`
    // does, by UTF-16 code unit, which differs from Rust's code point order
    // once characters outside the Basic Multilingual Plane are involved.
    let strings = || match (var, rhs) {
        (Value::String(a), Value::String(b)) => Some(a.encode_utf16().cmp(b.encode_utf16())),
        _ => None,
    };
    let numbers = || match (var, rhs) {
        (Value::Number(a), Value::Number(b)) => num_cmp(a, b),
        _ => None,
    };
    let timestamps = || {
        let a = clock::parse_rfc3339(var.as_str()?)?;
        let b = clock::parse_rfc3339(rhs.as_str()?)?;
        Some(a.cmp(&b))
    };
    let flag = rhs.as_bool().unwrap_or(false);
    match op {
        Op::StringEquals => ordered(strings(), &[Eq]),
        Op::StringLessThan => ordered(strings(), &[Lt]),
        Op::StringGreaterThan => ordered(strings(), &[Gt]),
        Op::StringLessThanEquals => ordered(strings(), &[Lt, Eq]),
        Op::StringGreaterThanEquals => ordered(strings(), &[Gt, Eq]),
        Op::StringMatches => match (var, rhs) {
            (Value::String(s), Value::String(pattern)) => glob_matches(pattern, s),
            _ => false,
        },
        Op::NumericEquals => ordered(numbers(), &[Eq]),
        Op::NumericLessThan => ordered(numbers(), &[Lt]),
        Op::NumericGreaterThan => ordered(numbers(), &[Gt]),
        Op::NumericLessThanEquals => ordered(numbers(), &[Lt, Eq]),
        Op::NumericGreaterThanEquals => ordered(numbers(), &[Gt, Eq]),
        Op::BooleanEquals => matches!((var, rhs), (Value::Bool(a), Value::Bool(b)) if a == b),
        Op::TimestampEquals => ordered(timestamps(), &[Eq]),
        Op::TimestampLessThan => ordered(timestamps(), &[Lt]),
        Op::TimestampGreaterThan => ordered(timestamps(), &[Gt]),
        Op::TimestampLessThanEquals => ordered(timestamps(), &[Lt, Eq]),
        Op::TimestampGreaterThanEquals => ordered(timestamps(), &[Gt, Eq]),
        Op::IsNull => var.is_null() == flag,
        Op::IsPresent => flag,
        Op::IsNumeric => var.is_number() == flag,
        Op::IsString => var.is_string() == flag,
        Op::IsBoolean => var.is_boolean() == flag,
        Op::IsTimestamp => var.as_str().and_then(clock::parse_rfc3339).is_some() == flag,
    }
}

/// Integers compare exactly; anything else as f64.
fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are a
/// literal asterisk and backslash.
fn glob_matches(pattern: &str, text: &str) -> bool {
    // None = wildcard, Some(c) = literal character.
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Some(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(None),
            c => tokens.push(Some(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy match with backtracking to the last star: linear in practice.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Some(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(None) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(Option::is_none)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rng::Rng;

    fn check(rule: Value, input: Value) -> Result<bool, String> {
        let mut rule = rule;
        rule["Next"] = json!("X");
        let (rule, next) = Rule::parse(&rule, true).unwrap();
        assert_eq!(next.as_deref(), Some("X"));
        let rng = Rng::seeded(0);
        let context = json!({"State": {"Name": "Pick"}});
        rule.eval(&Env { input: &input, context: &context, rng: &rng })
    }

    #[test]
    fn string_operators() {
        let input = json!({"s": "beta", "t": "beta", "n": 1});
        assert_eq!(check(json!({"Variable": "$.s", "StringEquals": "beta"}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.s", "StringEqualsPath": "$.t"}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.s", "StringLessThan": "gamma"}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.s", "StringGreaterThan": "alpha"}), input.clone()), Ok(true));
        assert_eq!(
            check(json!({"Variable": "$.s", "StringLessThanEquals": "beta"}), input.clone()),
            Ok(true)
        );
        assert_eq!(
            check(json!({"Variable": "$.s", "StringGreaterThanEquals": "c"}), input.clone()),
            Ok(false)
        );
        // Type mismatch is false, not an error.
        assert_eq!(check(json!({"Variable": "$.n", "StringEquals": "1"}), input.clone()), Ok(false));
        assert_eq!(check(json!({"Variable": "$$.State.Name", "StringEquals": "Pick"}), input), Ok(true));
    }

    /// String order is Java's `String.compareTo` (UTF-16 code units), the
    /// order Step Functions' string operators use. The ASCII cases are
    /// LocalStack's tests/aws/services/stepfunctions/v2/choice_operators/
    /// test_string_operators.py::test_string_less_than (validated); the last
    /// pair is where UTF-16 and code point order disagree: U+FF61 (one code
    /// unit, 0xFF61) sorts after U+1F600 (surrogates starting 0xD83D).
    #[test]
    fn string_order_is_utf16_code_units() {
        for (a, b, less) in
            [("", "", false), ("A", "AB", true), ("AB", "A", false), ("\u{FF61}", "\u{1F600}", false)]
        {
            let input = json!({"a": a, "b": b});
            let rule = json!({"Variable": "$.a", "StringLessThanPath": "$.b"});
            assert_eq!(check(rule, input.clone()), Ok(less), "{a:?} < {b:?}");
        }
        let input = json!({"a": "\u{1F600}"});
        assert_eq!(check(json!({"Variable": "$.a", "StringLessThan": "\u{FF61}"}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.a", "StringGreaterThan": "\u{FF61}"}), input), Ok(false));
    }

    #[test]
    fn string_matches_wildcards_and_escapes() {
        for (pattern, text, want) in [
            ("*.example.com", "acme.example.com", true),
            ("*.example.com", "example.com", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*", "", true),
            ("log-*-2024", "log-x-y-2024", true),
            (r"literal\*", "literal*", true),
            (r"literal\*", "literalX", false),
            (r"back\\slash", r"back\slash", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_matches(pattern, text), want, "{pattern} vs {text}");
        }
        assert_eq!(
            check(json!({"Variable": "$.d", "StringMatches": "*.test"}), json!({"d": "a.test"})),
            Ok(true)
        );
    }

    #[test]
    fn numeric_and_boolean_operators() {
        let input = json!({"n": 3, "f": 2.5, "m": 3.0, "b": true, "limit": 3});
        assert_eq!(check(json!({"Variable": "$.n", "NumericEquals": 3}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.m", "NumericEquals": 3}), input.clone()), Ok(true));
        assert_eq!(
            check(json!({"Variable": "$.n", "NumericEqualsPath": "$.limit"}), input.clone()),
            Ok(true)
        );
        assert_eq!(check(json!({"Variable": "$.f", "NumericLessThan": 3}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.f", "NumericGreaterThan": 2}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.n", "NumericLessThanEquals": 3}), input.clone()), Ok(true));
        assert_eq!(
            check(json!({"Variable": "$.n", "NumericGreaterThanEquals": 4}), input.clone()),
            Ok(false)
        );
        assert_eq!(
            check(json!({"Variable": "$.n", "NumericLessThanPath": "$.limit"}), input.clone()),
            Ok(false)
        );
        assert_eq!(
            check(json!({"Variable": "$.f", "NumericLessThanEqualsPath": "$.n"}), input.clone()),
            Ok(true)
        );
        assert_eq!(
            check(json!({"Variable": "$.n", "NumericGreaterThanPath": "$.f"}), input.clone()),
            Ok(true)
        );
        assert_eq!(
            check(json!({"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.limit"}), input.clone()),
            Ok(true)
        );
        assert_eq!(check(json!({"Variable": "$.b", "BooleanEquals": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.b", "BooleanEqualsPath": "$.b"}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.n", "BooleanEquals": true}), input), Ok(false));
    }

    #[test]
    fn timestamp_operators() {
        let input =
            json!({"t": "2024-01-01T10:00:00Z", "u": "2024-01-01T11:00:00+01:00", "bad": "yesterday"});
        assert_eq!(check(json!({"Variable": "$.t", "TimestampEqualsPath": "$.u"}), input.clone()), Ok(true));
        assert_eq!(
            check(json!({"Variable": "$.t", "TimestampLessThan": "2024-01-01T10:00:01Z"}), input.clone()),
            Ok(true)
        );
        assert_eq!(
            check(
                json!({"Variable": "$.t", "TimestampGreaterThanEquals": "2025-01-01T00:00:00Z"}),
                input.clone()
            ),
            Ok(false)
        );
        assert_eq!(
            check(
                json!({"Variable": "$.bad", "TimestampGreaterThan": "2000-01-01T00:00:00Z"}),
                input.clone()
            ),
            Ok(false)
        );
        assert_eq!(check(json!({"Variable": "$.t", "IsTimestamp": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.bad", "IsTimestamp": false}), input), Ok(true));
    }

    #[test]
    fn type_tests_and_presence() {
        let input = json!({"nul": null, "n": 1, "s": "x", "b": false});
        assert_eq!(check(json!({"Variable": "$.nul", "IsNull": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.n", "IsNull": false}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.n", "IsNumeric": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.s", "IsString": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.b", "IsBoolean": true}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.s", "IsBoolean": true}), input.clone()), Ok(false));
        assert_eq!(check(json!({"Variable": "$.gone", "IsPresent": false}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Variable": "$.nul", "IsPresent": true}), input.clone()), Ok(true));
        let err = check(json!({"Variable": "$.gone", "IsNull": true}), input.clone()).unwrap_err();
        assert!(err.contains("`$.gone`"), "{err}");
        let err = check(json!({"Variable": "$.n", "NumericEqualsPath": "$.gone"}), input).unwrap_err();
        assert!(err.contains("`$.gone` in `NumericEqualsPath`"), "{err}");
    }

    #[test]
    fn and_or_not() {
        let input = json!({"a": 1, "b": "x"});
        let a1 = json!({"Variable": "$.a", "NumericEquals": 1});
        let bx = json!({"Variable": "$.b", "StringEquals": "y"});
        assert_eq!(check(json!({"And": [a1.clone(), bx.clone()]}), input.clone()), Ok(false));
        assert_eq!(check(json!({"Or": [a1.clone(), bx.clone()]}), input.clone()), Ok(true));
        assert_eq!(check(json!({"Not": bx.clone()}), input.clone()), Ok(true));
        assert_eq!(check(json!({"And": [a1, {"Not": bx}]}), input.clone()), Ok(true));
        // Short-circuit: a missing variable after a decided Or is never looked at.
        let gone = json!({"Variable": "$.gone", "NumericEquals": 1});
        let a = json!({"Variable": "$.a", "NumericEquals": 1});
        assert_eq!(check(json!({"Or": [a, gone]}), input), Ok(true));
    }

    #[test]
    fn refuses_malformed_rules() {
        for (rule, top, msg) in [
            (json!({"Variable": "$.a", "StringEquals": "x"}), true, "needs `Next`"),
            (
                json!({"Variable": "$.a", "StringEquals": "x", "Next": "N"}),
                false,
                "only allowed on top-level",
            ),
            (json!({"Variable": "$.a", "StringEquals": 1, "Next": "N"}), true, "wrong type"),
            (json!({"Variable": "$.a", "NumericEquals": "1", "Next": "N"}), true, "wrong type"),
            (json!({"Variable": "$.a", "TimestampEquals": "today", "Next": "N"}), true, "wrong type"),
            (json!({"Variable": "$.a", "IsNull": "yes", "Next": "N"}), true, "wrong type"),
            (json!({"Variable": "$.a", "StringMatchesPath": "$.b", "Next": "N"}), true, "unknown field"),
            (json!({"Variable": "$.a", "Next": "N"}), true, "needs a comparison operator"),
            (
                json!({"Variable": "$.a", "StringEquals": "x", "IsNull": true, "Next": "N"}),
                true,
                "exactly one",
            ),
            (json!({"And": [], "Next": "N"}), true, "non-empty array"),
            (json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "N"}, "Next": "N"}), true, "in `Not`"),
            (json!({"StringEquals": "x", "Next": "N"}), true, "needs a `Variable`"),
            (json!({"Variable": "$.a[*]", "IsNull": true, "Next": "N"}), true, "wildcards"),
            (json!({"Variable": "$.a", "NumericEqualsPath": "nope", "Next": "N"}), true, "NumericEqualsPath"),
            (json!({"Variable": "$.a", "Foo": 1, "Next": "N"}), true, "unknown field `Foo`"),
        ] {
            let err = Rule::parse(&rule, top).unwrap_err();
            assert!(err.contains(msg), "{rule}: {err}");
        }
    }
}
