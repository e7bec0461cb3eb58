//! Payload templates (Parameters, ResultSelector) and the expressions that
//! fill them: a field whose name ends in `.$` takes its value from a path or
//! an intrinsic function call; every other value is copied as is.

use serde_json::{Map, Value};

use crate::intrinsics::Call;
use crate::path::Path;
use crate::rng::Rng;

/// What expressions are evaluated against.
pub(crate) struct Env<'a> {
    /// The data `$` refers to.
    pub input: &'a Value,
    /// The context object `$$` refers to.
    pub context: &'a Value,
    pub rng: &'a Rng,
}

impl Env<'_> {
    pub(crate) fn select(&self, path: &Path) -> Result<&Value, String> {
        path.select(self.input, self.context).ok_or_else(|| {
            format!("the JSONPath `{path}` could not be found in the input {}", preview(self.input))
        })
    }
}

/// A path or an intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Path(Path),
    Call(Call),
}

impl Expr {
    pub(crate) fn parse(text: &str) -> Result<Expr, String> {
        if text.starts_with("States.") {
            Call::parse(text).map(Expr::Call)
        } else if text.starts_with('$') {
            Path::parse(text).map(Expr::Path)
        } else {
            Err(format!("`{text}` is neither a JSONPath nor an intrinsic function call"))
        }
    }

    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<Value, String> {
        match self {
            Expr::Path(p) => env.select(p).cloned(),
            Expr::Call(c) => c.eval(env),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// The value of a `name.$` field; the stored key is `name.$` for messages.
    Expr(String, Expr),
}

impl Template {
    pub(crate) fn parse(value: &Value) -> Result<Template, String> {
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let field = match key.strip_suffix(".$") {
                        Some(name) => {
                            let Value::String(text) = v else {
                                return Err(format!(
                                    "field `{key}` ends in `.$`, so its value must be a JSONPath or an \
                                     intrinsic function string"
                                ));
                            };
                            let expr = Expr::parse(text).map_err(|e| format!("field `{key}`: {e}"))?;
                            if map.contains_key(name) {
                                return Err(format!(
                                    "fields `{name}` and `{key}` would both produce `{name}`"
                                ));
                            }
                            (name.to_string(), Template::Expr(key.clone(), expr))
                        }
                        None => (key.clone(), Template::parse(v)?),
                    };
                    fields.push(field);
                }
                Ok(Template::Object(fields))
            }
            Value::Array(items) => {
                items.iter().map(Template::parse).collect::<Result<_, _>>().map(Template::Array)
            }
            other => Ok(Template::Literal(other.clone())),
        }
    }

    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<Value, String> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Array(items) => {
                items.iter().map(|t| t.eval(env)).collect::<Result<_, _>>().map(Value::Array)
            }
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, t) in fields {
                    out.insert(name.clone(), t.eval(env)?);
                }
                Ok(Value::Object(out))
            }
            Template::Expr(key, expr) => expr.eval(env).map_err(|e| format!("field `{key}`: {e}")),
        }
    }
}

/// A short rendering of a JSON value for error causes, so a huge input does
/// not swamp the message.
pub(crate) fn preview(value: &Value) -> String {
    const MAX: usize = 200;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(template: Value, input: Value) -> Result<Value, String> {
        let rng = Rng::seeded(3);
        let context = json!({"Execution": {"Name": "e-1"}});
        let env = Env { input: &input, context: &context, rng: &rng };
        Template::parse(&template)?.eval(&env)
    }

    #[test]
    fn fills_paths_intrinsics_and_nested_values() {
        let out = apply(
            json!({
                "static": {"n": 1, "s": "$.not_a_path"},
                "id.$": "$.customer.id",
                "exec.$": "$$.Execution.Name",
                "greeting.$": "States.Format('hi {}', $.customer.name)",
                "nested": {"list": [{"x.$": "$.customer.id"}, 2], "whole.$": "$"}
            }),
            json!({"customer": {"id": "cus_1", "name": "Ann"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "static": {"n": 1, "s": "$.not_a_path"},
                "id": "cus_1",
                "exec": "e-1",
                "greeting": "hi Ann",
                "nested": {"list": [{"x": "cus_1"}, 2], "whole": {"customer": {"id": "cus_1", "name": "Ann"}}}
            })
        );
    }

    #[test]
    fn missing_path_names_the_field() {
        let err = apply(json!({"a": {"b.$": "$.nope"}}), json!({"x": 1})).unwrap_err();
        assert!(err.contains("field `b.$`") && err.contains("`$.nope` could not be found"), "{err}");
    }

    #[test]
    fn refuses_bad_templates() {
        let err = Template::parse(&json!({"a.$": 5})).unwrap_err();
        assert!(err.contains("must be a JSONPath"), "{err}");
        let err = Template::parse(&json!({"a.$": "plain"})).unwrap_err();
        assert!(err.contains("neither a JSONPath"), "{err}");
        let err = Template::parse(&json!({"a.$": "$.x", "a": 1})).unwrap_err();
        assert!(err.contains("would both produce"), "{err}");
        let err = Template::parse(&json!([{"a.$": "$[*]"}])).unwrap_err();
        assert!(err.contains("wildcards"), "{err}");
    }

    #[test]
    fn preview_truncates() {
        let long = json!("x".repeat(500));
        assert!(preview(&long).ends_with('…'));
        assert_eq!(preview(&json!({"a": 1})), "{\"a\":1}");
    }
}
