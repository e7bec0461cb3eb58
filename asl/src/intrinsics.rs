//! Intrinsic functions (`States.Format(...)` and friends), parsed once at load
//! time so that syntax errors, unknown functions and wrong argument counts
//! are load errors rather than surprises halfway through an execution.

use serde_json::Value;

use crate::path::Path;
use crate::template::Env;

/// Step Functions allows up to 10 nested calls in one field.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayLength,
    MathAdd,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "Format" => Func::Format,
            "StringToJson" => Func::StringToJson,
            "JsonToString" => Func::JsonToString,
            "Array" => Func::Array,
            "ArrayLength" => Func::ArrayLength,
            "MathAdd" => Func::MathAdd,
            "UUID" => Func::Uuid,
            _ => return None,
        })
    }

    /// Minimum and maximum argument counts.
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Format => (1, usize::MAX),
            Func::Array => (0, usize::MAX),
            Func::StringToJson | Func::JsonToString | Func::ArrayLength => (1, 1),
            Func::MathAdd => (2, 2),
            Func::Uuid => (0, 0),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A quoted literal; `placeholders` are the byte offsets of unescaped `{}`
    /// in `value`, which only matter when it is a `States.Format` template.
    Str {
        value: String,
        placeholders: Vec<usize>,
    },
    /// A number, `true`, `false` or `null`.
    Literal(Value),
    Path(Path),
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    name: String,
    func: Func,
    args: Vec<Arg>,
}

impl Call {
    pub(crate) fn parse(text: &str) -> Result<Call, String> {
        let mut parser = Parser { chars: text.chars().collect(), pos: 0 };
        let call = parser.call(0).map_err(|e| format!("intrinsic function `{text}`: {e}"))?;
        parser.skip_ws();
        if parser.pos != parser.chars.len() {
            return Err(format!("intrinsic function `{text}`: unexpected text after the closing `)`"));
        }
        Ok(call)
    }

    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<Value, String> {
        let name = &self.name;
        let values = || self.args.iter().map(|a| a.eval(env)).collect::<Result<Vec<Value>, String>>();
        match self.func {
            Func::Format => self.format(env),
            Func::StringToJson => match one(values()?)? {
                Value::String(s) => string_to_json(&s).map_err(|e| format!("{name}: {e}")),
                other => Err(format!("{name}: the argument must be a string, got {}", type_name(&other))),
            },
            Func::JsonToString => {
                serde_json::to_string(&one(values()?)?).map(Value::String).map_err(|e| format!("{name}: {e}"))
            }
            Func::Array => Ok(Value::Array(values()?)),
            Func::ArrayLength => match one(values()?)? {
                Value::Array(items) => Ok(Value::from(items.len())),
                other => Err(format!("{name}: the argument must be an array, got {}", type_name(&other))),
            },
            Func::MathAdd => {
                let vals = values()?;
                let ints = vals
                    .iter()
                    .map(|v| {
                        java_round(v).ok_or_else(|| format!("{name}: arguments must be numbers, got {v}"))
                    })
                    .collect::<Result<Vec<i64>, String>>()?;
                ints.iter()
                    .try_fold(0_i64, |acc, n| acc.checked_add(*n))
                    .map(Value::from)
                    .ok_or_else(|| format!("{name}: integer overflow"))
            }
            Func::Uuid => Ok(Value::String(env.rng.uuid_v4())),
        }
    }

    fn format(&self, env: &Env<'_>) -> Result<Value, String> {
        let name = &self.name;
        let Some((template, rest)) = self.args.split_first() else {
            return Err(format!("{name}: missing template"));
        };
        let (text, placeholders) = match template {
            Arg::Str { value, placeholders } => (value.clone(), placeholders.clone()),
            other => match other.eval(env)? {
                Value::String(s) => {
                    let positions = s.match_indices("{}").map(|(i, _)| i).collect();
                    (s, positions)
                }
                v => return Err(format!("{name}: the template must be a string, got {}", type_name(&v))),
            },
        };
        if placeholders.len() != rest.len() {
            return Err(format!(
                "{name}: the template has {} `{{}}` placeholders but {} arguments were given",
                placeholders.len(),
                rest.len()
            ));
        }
        let mut out = String::new();
        let mut from = 0;
        for (at, arg) in placeholders.iter().zip(rest) {
            out.push_str(text.get(from..*at).unwrap_or_default());
            java_to_string(&arg.eval(env)?, &mut out);
            from = at + 2;
        }
        out.push_str(text.get(from..).unwrap_or_default());
        Ok(Value::String(out))
    }
}

impl Arg {
    fn eval(&self, env: &Env<'_>) -> Result<Value, String> {
        match self {
            Arg::Str { value, .. } => Ok(Value::String(value.clone())),
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Path(p) => env.select(p).cloned(),
            Arg::Call(c) => c.eval(env),
        }
    }
}

fn one(mut values: Vec<Value>) -> Result<Value, String> {
    values.pop().ok_or_else(|| "missing argument".to_string())
}

/// A `States.MathAdd` argument: integers as they are, other numbers rounded
/// as Java's `Math.round` does (half up, towards positive infinity: 2.5 → 3,
/// -2.5 → -2), which is what Step Functions does (LocalStack's
/// test_math_operations.py::test_math_add, validated).
fn java_round(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64().filter(|f| f.abs() < 9.0e15)?;
    let floor = f.floor();
    // `f - floor` is exact, so a tie is seen as a tie.
    let rounded = if f - floor >= 0.5 { floor + 1.0 } else { floor };
    Some(rounded as i64)
}

/// `States.StringToJson`: a blank string is `null`, and `-0` is `0`
/// (LocalStack's test_json_manipulation.py::test_string_to_json, validated).
fn string_to_json(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the argument is not valid JSON text: {e}"))?;
    Ok(without_negative_zero(value))
}

fn without_negative_zero(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_f64() == Some(0.0) && n.as_f64().is_some_and(f64::is_sign_negative) => {
            Value::from(0)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_negative_zero).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, without_negative_zero(v))).collect())
        }
        other => other,
    }
}

/// How `States.Format` renders an argument: strings as they are, other
/// values as Java's `toString` does, so an object is `{Arg1=1, Arg2=[]}`
/// (LocalStack's test_generic.py::test_format_2, validated).
fn java_to_string(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_to_string(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                java_to_string(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn call(&mut self, depth: usize) -> Result<Call, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("more than {MAX_DEPTH} nested calls"));
        }
        if !self.rest_starts_with("States.") {
            return Err("expected a `States.` function".into());
        }
        self.pos += "States.".len();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let short: String = self.chars[start..self.pos].iter().collect();
        let name = format!("States.{short}");
        let func = Func::from_name(&short).ok_or_else(|| {
            format!(
                "`{name}` is not supported (supported: States.Format, States.StringToJson, \
                 States.JsonToString, States.Array, States.ArrayLength, States.MathAdd, States.UUID)"
            )
        })?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(format!("expected `(` after `{name}`"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => return Err(format!("unexpected `{c}` in the arguments of `{name}`")),
                    None => return Err(format!("missing `)` for `{name}`")),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let expected = if min == max { format!("{min}") } else { format!("at least {min}") };
            return Err(format!("`{name}` takes {expected} argument(s), got {}", args.len()));
        }
        if let (Func::Format, Some(Arg::Str { placeholders, .. })) = (func, args.first())
            && placeholders.len() != args.len() - 1
        {
            return Err(format!(
                "`{name}` template has {} `{{}}` placeholders but {} arguments follow it",
                placeholders.len(),
                args.len() - 1
            ));
        }
        Ok(Call { name, func, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => {
                // A path runs to the next `,` or `)` outside brackets and quotes.
                let start = self.pos;
                let (mut depth_brackets, mut quote) = (0_i32, None::<char>);
                while let Some(c) = self.peek() {
                    // A backslash in a quoted name is literal (see path.rs).
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(c),
                        (None, '[') => depth_brackets += 1,
                        (None, ']') => depth_brackets -= 1,
                        (None, ',' | ')') if depth_brackets <= 0 => break,
                        (None, _) => {}
                    }
                    self.pos += 1;
                }
                let end = self.pos.min(self.chars.len());
                let text: String = self.chars[start..end].iter().collect();
                Path::parse(text.trim_end()).map(Arg::Path)
            }
            Some('S') if self.rest_starts_with("States.") => self.call(depth + 1).map(Arg::Call),
            Some(_) => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c != ',' && c != ')' && !c.is_whitespace()) {
                    self.pos += 1;
                }
                let token: String = self.chars[start..self.pos].iter().collect();
                match serde_json::from_str::<Value>(&token) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal(v)),
                    _ => Err(format!(
                        "argument `{token}` is not a quoted string, number, boolean, null, path or function"
                    )),
                }
            }
            None => Err("missing argument".into()),
        }
    }

    /// A single-quoted literal. `\'`, `\{`, `\}` and `\\` are the only
    /// escapes (Developer Guide, "Intrinsic functions", reserved characters);
    /// any other backslash, such as the `\"` a hand-escaped JSON string
    /// leaves, is refused at load time, as Step Functions refuses it. An
    /// unescaped `{}` is recorded as a Format placeholder.
    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1;
        let mut value = String::new();
        let mut placeholders = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string literal".into()),
                Some('\\') => {
                    let escaped =
                        self.chars.get(self.pos + 1).copied().ok_or("unterminated string literal")?;
                    if !matches!(escaped, '\'' | '{' | '}' | '\\') {
                        return Err(format!(
                            "`\\{escaped}` in a string literal: only \\', \\{{, \\}} and \\\\ may follow a \
                             backslash (write `{escaped}` without it, or `\\\\` for a backslash)"
                        ));
                    }
                    value.push(escaped);
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Arg::Str { value, placeholders });
                }
                Some('{') if self.chars.get(self.pos + 1) == Some(&'}') => {
                    placeholders.push(value.len());
                    value.push_str("{}");
                    self.pos += 2;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rng::Rng;

    fn eval(text: &str, input: Value) -> Result<Value, String> {
        let rng = Rng::seeded(1);
        let context = json!({"State": {"Name": "S"}, "Execution": {"Name": "exec-1"}});
        let env = Env { input: &input, context: &context, rng: &rng };
        Call::parse(text).unwrap().eval(&env)
    }

    #[test]
    fn format_with_literals_paths_and_escapes() {
        let input = json!({"name": "Arnav", "n": 3, "t": "Hi {}!", "ok": true});
        assert_eq!(eval("States.Format('Hello, {}.', $.name)", input.clone()), Ok(json!("Hello, Arnav.")));
        assert_eq!(
            eval("States.Format('{} {} {} {}', $.n, $.ok, null, 'x')", input.clone()),
            Ok(json!("3 true null x"))
        );
        assert_eq!(eval("States.Format($.t, $.name)", input.clone()), Ok(json!("Hi Arnav!")));
        assert_eq!(
            eval(r"States.Format('it\'s \{literal\} {}', $$.Execution.Name)", input.clone()),
            Ok(json!("it's {literal} exec-1"))
        );
        assert!(eval("States.Format('{}', $.missing)", input.clone()).unwrap_err().contains("$.missing"));
        assert!(eval("States.Format($.t)", input).unwrap_err().contains("1 `{}` placeholders but 0"));
    }

    #[test]
    fn json_array_and_math() {
        let input = json!({"s": "{\"a\":[1,2]}", "obj": {"k": "v"}, "xs": [1, 2, 3], "n": 5});
        assert_eq!(eval("States.StringToJson($.s)", input.clone()), Ok(json!({"a": [1, 2]})));
        assert_eq!(eval("States.JsonToString($.obj)", input.clone()), Ok(json!("{\"k\":\"v\"}")));
        assert_eq!(
            eval("States.Array($.n, 'two', 3.5, true, null, States.Array())", input.clone()),
            Ok(json!([5, "two", 3.5, true, null, []]))
        );
        assert_eq!(eval("States.ArrayLength($.xs)", input.clone()), Ok(json!(3)));
        assert_eq!(eval("States.MathAdd($.n, -7)", input.clone()), Ok(json!(-2)));
        assert_eq!(
            eval("States.MathAdd(States.ArrayLength(States.Array(1, 2)), 1)", input.clone()),
            Ok(json!(3))
        );
        assert!(eval("States.MathAdd($.n, 'x')", input.clone()).unwrap_err().contains("must be numbers"));
        assert!(eval("States.StringToJson($.n)", input.clone()).unwrap_err().contains("must be a string"));
        assert!(eval("States.StringToJson('{nope')", input.clone()).unwrap_err().contains("not valid JSON"));
        assert!(eval("States.ArrayLength($.obj)", input).unwrap_err().contains("must be an array"));
    }

    /// LocalStack's tests/aws/services/stepfunctions/v2/intrinsic_functions/
    /// test_math_operations.py::test_math_add (validated): each argument is
    /// rounded as Java's Math.round, then added.
    #[test]
    fn math_add_rounds_like_java() {
        for (fst, snd, sum) in [
            (json!(-9), json!(3), -6),
            (json!(1.49), json!(1.50), 3),
            (json!(1.50), json!(1.51), 4),
            (json!(-1.49), json!(-1.50), -2),
            (json!(-1.50), json!(-1.51), -3),
            (json!(1.49), json!(-1.49), 0),
            (json!(0.5), json!(0), 1),
            (json!(2.5), json!(0), 3),
            (json!(-0.5), json!(0.5), 1),
            (json!(-0.5), json!(0), 0),
            (json!(-2.5), json!(0), -2),
            (json!(-3.5), json!(0), -3),
            (json!(0.49999999999999994), json!(0), 0),
        ] {
            let input = json!({"fst": fst, "snd": snd});
            assert_eq!(eval("States.MathAdd($.fst, $.snd)", input.clone()), Ok(json!(sum)), "{input}");
        }
    }

    /// LocalStack's tests/aws/services/stepfunctions/v2/intrinsic_functions/
    /// test_json_manipulation.py::test_string_to_json (validated): "" and " "
    /// give null, "-0" gives 0.
    #[test]
    fn string_to_json_of_blank_and_negative_zero() {
        for (text, want) in [
            ("", json!(null)),
            (" ", json!(null)),
            ("null", json!(null)),
            ("-0", json!(0)),
            ("1.1", json!(1.1)),
            ("\"HelloWorld\"", json!("HelloWorld")),
            ("[1, 2, \"HelloWorld\"]", json!([1, 2, "HelloWorld"])),
        ] {
            let got = eval("States.StringToJson($.s)", json!({"s": text})).unwrap();
            assert_eq!(got, want, "{text:?}");
            assert_eq!(got.to_string(), want.to_string(), "{text:?}");
        }
    }

    /// LocalStack's tests/aws/services/stepfunctions/v2/intrinsic_functions/
    /// test_generic.py::test_format_2 (validated): an object argument renders
    /// as Java's Map.toString, `{Arg1=1, Arg2=[]}`.
    #[test]
    fn format_renders_objects_and_arrays_as_java_does() {
        let input = json!({"o": {"Arg1": 1, "Arg2": []}, "a": [1, "x", null, {"k": true}], "f": 1.1});
        assert_eq!(
            eval("States.Format('fst={} and snd={}.', $.o, $.o)", input.clone()),
            Ok(json!("fst={Arg1=1, Arg2=[]} and snd={Arg1=1, Arg2=[]}."))
        );
        assert_eq!(eval("States.Format('{} {}', $.a, $.f)", input), Ok(json!("[1, x, null, {k=true}] 1.1")));
    }

    /// An escape other than \', \{, \} and \\ (here the `\"` of a
    /// hand-escaped JSON string) is refused when the definition loads: AWS
    /// refuses it with SCHEMA_VALIDATION_FAILED (LocalStack's
    /// tests/aws/services/stepfunctions/v2/scenarios/test_base_scenarios.py::
    /// test_illegal_escapes, both cases, validated).
    #[test]
    fn unknown_escapes_are_load_errors() {
        for text in [
            r#"States.StringToJson('{"text":"An \"escaped double quote\" here"}')"#,
            r#"States.Format('He said, \"Hello, {}!\"', 'Test \"Name\" Here')"#,
            r"States.Format('a\nb')",
        ] {
            let err = Call::parse(text).unwrap_err();
            assert!(err.contains("may follow a backslash"), "{text}: {err}");
        }
        // Plain double quotes need no escape (test_json_merge_escaped_argument).
        assert_eq!(
            eval(r#"States.StringToJson('{"constant_in_literal": "false"}')"#, json!({})),
            Ok(json!({"constant_in_literal": "false"}))
        );
        assert_eq!(eval(r"States.Format('a\\b \{\}')", json!({})), Ok(json!(r"a\b {}")));
    }

    #[test]
    fn uuid_is_a_v4_string() {
        let v = eval("States.UUID()", json!({})).unwrap();
        let s = v.as_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
    }

    #[test]
    fn paths_with_commas_in_brackets() {
        let input = json!({"a,b": "x"});
        assert_eq!(eval("States.Format('{}', $['a,b'])", input), Ok(json!("x")));
    }

    #[test]
    fn parse_errors_are_load_errors() {
        for (text, msg) in [
            ("States.Hash($.x, 'SHA-256')", "`States.Hash` is not supported"),
            ("States.Nope()", "`States.Nope` is not supported"),
            ("States.Format('{} {}', $.a)", "2 `{}` placeholders but 1"),
            ("States.MathAdd(1)", "takes 2 argument(s), got 1"),
            ("States.UUID(1)", "takes 0 argument(s)"),
            ("States.Array('x'", "missing `)`"),
            ("States.Array('x) ", "unterminated string"),
            ("States.Array(nope)", "argument `nope`"),
            ("States.Array($..a)", "recursive descent"),
            ("States.Array() extra", "unexpected text"),
            ("States.Array(1 2)", "unexpected `2`"),
        ] {
            let err = Call::parse(text).unwrap_err();
            assert!(err.contains(msg), "{text}: {err}");
        }
        let deep = format!("{}1{}", "States.Array(".repeat(11), ")".repeat(11));
        assert!(Call::parse(&deep).unwrap_err().contains("nested"));
    }
}
