"""The deploy READMEs' shell blocks name only what exists, as far as that is checkable offline.

Nothing here deploys. Each block is walked as a shell would walk it, from the repository
root as a reader pastes it (``cd`` moves the folder later commands of the block run in, a
heredoc is the file its command writes: so a block says where it runs), and each
command is held to what this repository defines: our commands' options, scripts and
``python -m`` modules with their options, the imports of a ``python -c`` snippet, CDK
context keys and stack parameters, Serverless ``--param`` names, Terraform variables, and
every file a ``docker``, ``kubectl`` or ``gcloud`` command reads. A command whose program
the test does not know fails, so a new kind of command gets a check or a conscious pass.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
import sys
from pathlib import Path

import pytest

from tests.readme_blocks import (
    OURS,
    ROOT,
    blocks,
    check_nox,
    check_ours,
    check_pip,
    check_script,
    commands,
    help_text,
    ids,
    program_of,
)

READMES = [ROOT / "deploy" / name / "README.md" for name in ("aws", "container", "gcp")]
SHELL = blocks(READMES, "sh")
PASSED = {"curl", "awscurl"}
"""Talk to a deployed API: nothing of theirs exists offline to check against."""
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def logical_lines(script: str) -> tuple[list[str], dict[int, str]]:
    """The block's lines with continuations joined and heredoc bodies taken out, and each
    heredoc's body by the index of the line that opened it."""
    kept: list[str] = []
    docs: dict[int, str] = {}
    lines = iter(script.replace("\\\n", " ").splitlines())
    for line in lines:
        kept.append(line)
        if match := HEREDOC.search(line):
            body = []
            for inner in lines:
                if inner.strip() == match.group(1):
                    break
                body.append(inner)
            else:
                pytest.fail(f"heredoc {match.group(1)} never ends: {line}")
            docs[len(kept) - 1] = "\n".join(body)
    return kept, docs


def context_keys(app: Path) -> set[str]:
    """Every context key the CDK app in ``app`` reads, in any of its modules."""
    source = "\n".join(p.read_text() for p in app.glob("*.py"))
    keys = set(re.findall(r"try_get_context\(\s*\"(\w+)\"", source))
    keys |= set(re.findall(r"\bget\(\s*\"(\w+)\",", source))  # settings.from_context's reader
    keys |= set(re.findall(r"_context_int\(\s*\w+,\s*\"(\w+)\"", source))
    return keys


def stack_parameters(app: Path) -> set[str]:
    source = "\n".join(p.read_text() for p in app.glob("*.py"))
    return set(re.findall(r"CfnParameter\(\s*self,\s*\"(\w+)\"", source))


def terraform_variables(root: Path) -> set[str]:
    source = "\n".join(p.read_text() for p in root.glob("*.tf"))
    return set(re.findall(r"^variable\s+\"(\w+)\"", source, re.M))


def values_after(argv: list[str], flag: str) -> list[str]:
    """Every value of ``flag``, given as ``flag VALUE`` or ``flag=VALUE``."""
    found = [b for a, b in itertools.pairwise(argv) if a == flag]
    found += [w.split("=", 1)[1] for w in argv if w.startswith(f"{flag}=")]
    return found


def check_module(argv: list[str], cwd: Path) -> None:
    """``python -m MODULE [--options]``: it imports from ``cwd`` and takes each option."""
    module = argv[argv.index("-m") + 1]
    text = help_text(sys.executable, "-m", module, cwd=cwd)
    for word in argv[argv.index("-m") + 2 :]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert flag in text, f"python -m {module} has no {flag}"


def check_snippet(code: str) -> None:
    """``python -c CODE``: it parses, and every name it imports exists (nothing runs)."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = _module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                _module(alias.name)


def _module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise AssertionError(f"the snippet imports {name}, which does not import: {exc}") from exc


def check_cdk(argv: list[str], cwd: Path) -> None:
    assert (cwd / "cdk.json").is_file(), f"cdk runs from the app's folder, not {cwd}"
    assert argv[1] in {"bootstrap", "deploy", "destroy", "diff", "synth"}, argv[1]
    keys = context_keys(cwd)
    for pair in values_after(argv, "-c") + values_after(argv, "--context"):
        assert pair.split("=", 1)[0] in keys, f"the CDK app reads no context key {pair}"
    parameters = stack_parameters(cwd)
    for pair in values_after(argv, "--parameters"):
        assert pair.split("=", 1)[0] in parameters, f"the stack has no parameter {pair}"


def check_serverless(argv: list[str], cwd: Path) -> None:
    service = cwd / "serverless.yml"
    assert service.is_file(), f"serverless runs from the service's folder, not {cwd}"
    declared = set(re.findall(r"\$\{param:(\w+)", service.read_text()))
    for pair in values_after(argv, "--param"):
        assert pair.split("=", 1)[0] in declared, f"serverless.yml reads no param {pair}"


def check_terraform(argv: list[str], cwd: Path) -> None:
    variables = terraform_variables(cwd)
    assert variables, f"terraform runs from a configuration, not {cwd}"
    assert argv[1] in {"init", "plan", "apply", "destroy", "output"}, argv[1]
    for pair in values_after(argv, "-var"):
        assert pair.split("=", 1)[0] in variables, f"no terraform variable {pair}"


def check_files(argv: list[str], cwd: Path) -> None:
    """``docker build -f FILE CONTEXT``, ``kubectl apply -f FILE``, ``gcloud run services
    replace FILE``: what they read is in the repository."""
    program = program_of(argv[0])
    named = values_after(argv, "-f")
    if program == "docker" and argv[1] == "build":
        named.append(argv[-1])  # the build context
    if program == "gcloud" and argv[1:4] == ["run", "services", "replace"]:
        named.append(argv[4])
    for name in named:
        assert (cwd / name).exists(), f"{' '.join(argv[:2])}: no {name} from {cwd}"


def check_heredoc(opened: str, body: str, cwd: Path) -> None:
    """A heredoc that writes ``terraform.tfvars`` sets only variables that exist."""
    if "terraform.tfvars" in opened:
        names = set(re.findall(r"^(\w+)\s*=", body, re.M))
        assert names, body
        unknown = names - terraform_variables(cwd)
        assert not unknown, f"terraform.tfvars sets unknown variables {sorted(unknown)}"


def walk(script: str) -> None:
    """Check every command of a block in the folder it would run in."""
    cwd = ROOT
    lines, docs = logical_lines(script)
    for index, line in enumerate(lines):
        for argv in commands(line):
            program = program_of(argv[0])
            if program == "cd":
                cwd = (cwd / argv[1]).resolve()
                assert cwd.is_dir(), f"cd {argv[1]}: no such folder"
            elif program in OURS:
                check_ours(argv)
            elif program == "nox":
                check_nox(argv)
            elif program == "pip" or argv[1:3] == ["-m", "pip"]:
                check_pip(argv)
            elif program.startswith("python") and "-m" in argv:
                check_module(argv, cwd)
            elif program.startswith("python") and "-c" in argv:
                check_snippet(argv[argv.index("-c") + 1])
            elif program.startswith("python") and any(w.endswith(".py") for w in argv):
                check_script(argv)
            elif program == "cdk":
                check_cdk(argv, cwd)
            elif program == "npx" and argv[1].startswith("serverless"):
                check_serverless(argv[1:], cwd)
            elif program == "terraform":
                check_terraform(argv, cwd)
            elif program in {"docker", "kubectl", "gcloud"}:
                check_files(argv, cwd)
            elif program == "cat" and index in docs:
                check_heredoc(line, docs[index], cwd)
            elif program not in PASSED:
                pytest.fail(f"the deploy README test does not know {argv[0]!r}")


def test_each_deploy_readme_has_shell_blocks() -> None:
    for readme in READMES:
        assert any(where.startswith(str(readme.relative_to(ROOT))) for where, _ in SHELL), readme


@pytest.mark.parametrize("script", [b for _, b in SHELL], ids=ids(SHELL))
def test_each_shell_block_names_what_exists(script: str) -> None:
    walk(script)


@pytest.mark.parametrize(
    ("script", "complaint"),
    [
        ("cd deploy/aws\ncdk deploy -c jwtIssuers=x", "no context key jwtIssuers"),
        ("cd deploy/aws\ncdk deploy --parameters AlertMail=a@b.c", "no parameter AlertMail"),
        ("cdk deploy -c stage=prod", "from the app's folder"),
        ("cd deploy/aws\nnpx serverless@3 deploy --param=alertMail=x", "no param alertMail"),
        ("cd deploy/gcp\nterraform apply -var deletion=false", "no terraform variable"),
        ("cd deploy/gcp\ncat > terraform.tfvars <<EOF\nprojekt = 1\nEOF", "unknown variables"),
        ("cd deploy/gcp\ncat > terraform.tfvars <<EOF\nproject = 1", "never ends"),
        ('python -c "from orders_aws.table import create_table; import nope_not_here"', "nope"),
        ("kubectl apply -f deploy/container/kubernetes/orders.yaml", "no deploy/container"),
        ("docker build -f deploy/container/Dockerfil -t x .", "no deploy/container/Dockerfil"),
        ("python -m deploy.aws.bundle --arch-x x86_64", "has no --arch-x"),
        ('python -c "from orders_aws.dynamodb import create_table"', "has no create_table"),
        ("cd deploy/awz", "no such folder"),
        ("wget http://example.com", "does not know 'wget'"),
    ],
)
def test_a_wrong_command_is_named(script: str, complaint: str) -> None:
    """Each check fails on the mistake it exists for (the wrong import is one the container
    README once had: ``create_table`` lives in ``orders_aws.table``)."""
    with pytest.raises((AssertionError, pytest.fail.Exception)) as caught:
        walk(script)
    assert complaint in str(caught.value)
