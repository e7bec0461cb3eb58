"""Writes each state machine definition of a SAM template, as deployed.

For every AWS::Serverless::StateMachine with a DefinitionUri, reads the file,
replaces each ${Name} with the value of its DefinitionSubstitutions entry and
writes the result, under the file's own name, into OUT_DIR. A `!GetAtt X.Arn`
of an AWS::Serverless::Function becomes a Lambda function ARN of the shape AWS
gives it (account 123456789012, us-east-1), `!Ref X` becomes X, and a plain
string stays as it is. A placeholder without a substitution, or a definition
that is not JSON once filled in, is an error: SAM would deploy it broken.

    python scripts/render-statemachines.py infra/template.yaml OUT_DIR
"""

import json
import pathlib
import re
import sys

import yaml

REGION = "us-east-1"
ACCOUNT = "123456789012"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags as {"Fn::...": value}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def resolve(value, resources):
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical, attribute = target.split(".", 1) if isinstance(target, str) else target
        kind = resources.get(logical, {}).get("Type")
        if attribute == "Arn" and kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}"
        raise SystemExit(f"cannot render !GetAtt {logical}.{attribute} ({kind})")
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    raise SystemExit(f"cannot render the substitution {value!r}")


def main():
    template_path = pathlib.Path(sys.argv[1])
    out_dir = pathlib.Path(sys.argv[2])
    template = yaml.load(template_path.read_text(), Loader=CfnLoader)
    resources = template.get("Resources", {})
    count = 0
    for logical, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties", {})
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            continue
        source = template_path.parent / uri
        values = {k: resolve(v, resources) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}

        def fill(match):
            name = match.group(1)
            if name not in values:
                raise SystemExit(f"{source}: ${{{name}}} has no DefinitionSubstitutions entry in {logical}")
            return values[name]

        text = re.sub(r"\$\{([^}]*)\}", fill, source.read_text())
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{source}: not JSON once substituted: {error}")
        (out_dir / source.name).write_text(text)
        count += 1
    if count == 0:
        raise SystemExit(f"{template_path}: no state machine with a DefinitionUri")


if __name__ == "__main__":
    main()
