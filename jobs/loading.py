"""Spec files -> validated experiments, or every error as ``file: field.path: message``.

A path is an experiment file, a suite file (``suite:`` + ``experiments:``) or a folder (its
``suite.yaml`` if it has one, else every ``*.yaml`` in it). Nothing here raises for bad input: errors are
collected and returned so that the CLI can print all of them at once.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from jobs.spec import NAME_PATTERN, NAME_RULE, Experiment, Suite
from jobs.words import count, did_you_mean, first_line

SUITE_FILE = "suite.yaml"


@dataclass(frozen=True)
class SpecError:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        line = f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"
        return one_line(line)


def one_line(text: str) -> str:
    """``text`` with control characters escaped (a YAML key may hold a newline): an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class LoadedExperiment:
    file: Path
    experiment: Experiment


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _union_member(part: Any, node: Any) -> bool:
    """Whether a path part names the member of a plain union that Pydantic tried (``literal['test']``,
    ``HeldOut``) rather than a key the spec holds at that point (``node``; a user's ``Title:`` is a key)."""
    named = isinstance(part, str) and (part.startswith("literal[") or part[:1].isupper())
    return named and not (isinstance(node, dict) and part in node)


def _strip_tags(loc: tuple, document: Any) -> tuple:
    """Drop the discriminator values and union members Pydantic puts in a path (``layers.1.dense.units`` ->
    ``layers.1.units``, ``training.validation.HeldOut`` -> ``training.validation``)."""
    kept, node = [], document
    for part in loc:
        if isinstance(node, dict) and part not in node and part in (node.get("kind"), node.get("name")):
            continue
        if _union_member(part, node):
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The spec model found at ``loc`` (Pydantic's path, union tags included) below ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) in (Union, UnionType):  # ``part``: a discriminated union's tag, or a member
            members = get_args(current)
            current = next((m for m in members if part in _tags(m) or part == getattr(m, "__name__", "")), None)
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, UnionType) and len(members) == 1:
            annotation = members[0]
            continue
        return annotation


def _tags(model: Any) -> tuple:
    """The discriminator values of a union member (its ``kind`` or ``name`` literal)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ()
    return tuple(
        t for key in ("kind", "name") if key in model.model_fields for t in get_args(model.model_fields[key].annotation)
    )


def describe_error(error: dict, model: type[BaseModel]) -> str:
    """One Pydantic error as a sentence a spec author can act on."""
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        key = error["loc"][-1]
        owner = _model_at(model, error["loc"][:-1])
        known = list(owner.model_fields) if owner else []
        # a key that belongs one level down, as a variant's epochs under its training
        below = [name for name in known if key in getattr(_model_at(owner, (name,)), "model_fields", {})]
        hint = f" (it belongs under {below[0]})" if below else did_you_mean(key, known)
        return f"unknown key '{key}'{hint}" + (f"; expected one of: {', '.join(known)}" if known else "")
    if kind == "union_tag_invalid":
        options = _quoted(ctx["expected_tags"])
        what = "layer kind" if "kind" in ctx["discriminator"] else "dataset"
        return (
            f"unknown {what} '{ctx['tag']}'{did_you_mean(ctx['tag'], options)}; expected one of: {', '.join(options)}"
        )
    if kind == "union_tag_not_found":
        return f"missing key {ctx['discriminator']}"
    if kind == "literal_error":
        options = _quoted(ctx["expected"])
        return f"'{given}' is not allowed{did_you_mean(given, options)}; expected one of: {', '.join(options)}"
    if kind == "missing":
        return "required key missing"
    if kind == "too_short":
        return f"expected at least {count(ctx['min_length'], 'item')}, got {ctx['actual_length']}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return f"expected {NAME_RULE} (got {given!r})"
    if kind == "string_type" and error["loc"][-1] in ("lower_than", "higher_than"):
        return f"expected the name of a variant (got {given!r}); to compare with a number, use at_least or at_most"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list{_got(given)}"
    if kind == "model_attributes_type" and error["loc"] == ("dataset",) and isinstance(given, str):
        return f"expected a mapping such as {{name: {given}}} (got {given!r})"
    if kind in ("model_type", "model_attributes_type"):
        return f"expected {_mapping_of(model, error['loc'])}{_got(given)}"
    message = error["msg"].removeprefix("Value error, ")
    if not isinstance(given, (dict, list)):
        return f"{message} (got {_as_written(given)})"
    return message


def _got(given: Any) -> str:
    if isinstance(given, dict):
        return ", got a mapping"
    return ", got a list" if isinstance(given, list) else f" (got {_as_written(given)})"


def _as_written(given: Any) -> str:
    """A value as YAML spells it where Python's spelling differs (``true``, not ``True``)."""
    return yaml.safe_dump(given).removesuffix("\n...\n") if isinstance(given, bool) or given is None else repr(given)


def _mapping_of(model: type[BaseModel], loc: tuple) -> str:
    owner = _model_at(model, loc)
    return f"a mapping with keys {', '.join(owner.model_fields)}" if owner else "a mapping"


def _alternatives(errors: list[dict], model: type[BaseModel]) -> str:
    """One sentence for a value that matched no member of a plain union (``validation: test`` or
    ``{held_out: 0.2}``)."""
    expected, literals = [], []
    for error in errors:
        if error["type"] == "literal_error":
            literals += _quoted(error["ctx"]["expected"])
            expected += [f"'{option}'" for option in _quoted(error["ctx"]["expected"])]
        elif error["type"] == "model_type":
            expected.append(_mapping_of(model, error["loc"]))
        else:
            expected.append(error["msg"])
    given = errors[0].get("input")
    hint = did_you_mean(given, literals) if isinstance(given, str) else ""
    return f"expected {' or '.join(expected)}{_got(given)}{hint}"


def _ends_in_union_member(loc: tuple, document: Any) -> bool:
    return bool(loc) and _strip_tags(loc, document) == _strip_tags(loc[:-1], document)


def _follows_from_another_error(error: dict, errors: list[dict], document: Any) -> bool:
    """Errors that only echo another one: a list 'too short' because its items failed, a key 'missing'
    because it was misspelt (``unit: 256`` is one mistake, not two), and a union's literal member (``test``)
    when the value was a mapping that failed inside another member."""
    loc = error["loc"]
    if error["type"] == "literal_error" and _ends_in_union_member(loc, document):  # a mapping failed inside
        return any(other["loc"][: len(loc) - 1] == loc[:-1] and len(other["loc"]) > len(loc) for other in errors)
    if error["type"] == "too_short":
        return any(other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors)
    if error["type"] == "missing":
        misspelt = [o["loc"][-1] for o in errors if o["type"] == "extra_forbidden" and o["loc"][:-1] == loc[:-1]]
        return bool(difflib.get_close_matches(str(loc[-1]), [str(k) for k in misspelt], n=1, cutoff=0.6))
    return False


def validate_document(model: type[BaseModel], document: Any, file: str) -> tuple[Any, list[SpecError]]:
    try:
        parsed = model.model_validate(document)
    except ValidationError as invalid:
        errors = invalid.errors()
        found: dict[str, list[dict]] = {}  # the members of a plain union fail together, at one path
        for error in errors:
            if not _follows_from_another_error(error, errors, document):
                found.setdefault(".".join(map(str, _strip_tags(error["loc"], document))), []).append(error)
        messages = []
        for path, group in found.items():
            if len(group) > 1 and all(_ends_in_union_member(e["loc"], document) for e in group):
                messages.append(SpecError(file, path, _alternatives(group, model)))
            else:
                messages += [SpecError(file, path, describe_error(e, model)) for e in group]
        return None, messages
    problems = parsed.problems() if isinstance(parsed, Experiment) else []
    return parsed, [SpecError(file, ".".join(map(str, path)), message) for path, message in problems]


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: YAML forbids it, but PyYAML keeps
    the last one, so a second ``epochs:`` or ``claims:`` would silently replace the first."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *defaults``: keys given after it override
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key if isinstance(key, str) else id(key_node))
        return super().construct_mapping(node, deep)


def read_yaml(file: Path) -> tuple[Any, list[SpecError]]:
    name = str(file)
    # os.path's checks, since pathlib's raise where a folder on the way cannot be entered
    if os.path.exists(file) and not os.path.isfile(file):  # a folder, a pipe, a device: reading would fail or wait
        return None, [SpecError(name, "", "not a file; expected a YAML spec file")]
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [SpecError(name, "", "no such file")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [SpecError(name, "", f"cannot read: {error}")]
    try:
        document = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or first_line(str(error))
        return None, [SpecError(name, "", f"not valid YAML: {problem}{where}")]
    except RecursionError:
        return None, [SpecError(name, "", "not valid YAML here: nested too deeply")]
    if document is None:
        return None, [SpecError(name, "", "the file is empty; expected an experiment (name, dataset, ...)")]
    if not isinstance(document, dict):
        return None, [
            SpecError(name, "", f"expected a mapping of keys (name, dataset, ...), got a {type(document).__name__}")
        ]
    return document, []


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[SpecError]]:
    """Experiment files named by ``paths``, following folders and suite files, without duplicates."""
    files: list[Path] = []
    errors: list[SpecError] = []
    for path in paths:
        if os.path.isdir(path):
            try:
                os.listdir(path)  # glob would find nothing in a folder it cannot read, and say so as "no specs"
            except OSError as error:
                errors.append(SpecError(str(path), "", f"cannot read: {error}"))
                continue
            suite = path / SUITE_FILE
            found = [suite] if os.path.isfile(suite) else sorted(path.glob("*.yaml"))
            if not found:
                errors.append(SpecError(str(path), "", "folder holds no *.yaml spec files"))
            sub_files, sub_errors = expand_paths(found) if found else ([], [])
            files += sub_files
            errors += sub_errors
            continue
        document, read_errors = read_yaml(path)
        if read_errors:
            errors += read_errors
        elif "suite" in document:
            suite, suite_errors = validate_document(Suite, document, str(path))
            errors += suite_errors
            if suite:
                listed = [path.parent / name for name in suite.experiments]
                missing = [str(p) for p in listed if not os.path.isfile(p)]
                for i, name in enumerate(suite.experiments):
                    if str(path.parent / name) in missing:
                        what = "a folder, not a spec file" if os.path.isdir(path.parent / name) else "no such file"
                        errors.append(SpecError(str(path), f"experiments.{i}", f"{what}: '{name}'"))
                files += [p for p in listed if str(p) not in missing]
        else:
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return [Path(p).relative_to(Path.cwd()) if Path(p).is_relative_to(Path.cwd()) else p for p in unique], errors


def left_out_by_suites(paths: list[Path]) -> list[str]:
    """One line for each spec file in a folder of ``paths`` that the folder's suite file does not list: a
    folder with a suite stands for the suite alone, so a file added beside it is not run, and says so."""
    lines = []
    for folder in paths:
        suite = folder / SUITE_FILE
        if not (os.path.isdir(folder) and os.path.isfile(suite)):
            continue
        document, errors = read_yaml(suite)
        if errors:  # an unreadable or invalid suite is an error of its own (expand_paths)
            continue
        listed, errors = validate_document(Suite, document, str(suite))
        if errors:
            continue
        named = {(folder / name).resolve() for name in listed.experiments}
        lines += [
            f"{file}: not listed in {suite}, so not loaded (name the file, or add it to the suite's experiments)"
            for file in sorted(folder.glob("*.yaml"))
            if file.name != SUITE_FILE and file.resolve() not in named
        ]
    return lines


def load_experiments(paths: list[Path]) -> tuple[list[LoadedExperiment], list[SpecError]]:
    files, errors = expand_paths(paths)
    loaded: list[LoadedExperiment] = []
    for file in files:
        document, read_errors = read_yaml(file)
        if read_errors:
            errors += read_errors
            continue
        if "suite" in document:  # listed by another suite
            errors.append(SpecError(str(file), "", "a suite, listed by another suite: a suite lists experiment files"))
            continue
        experiment, spec_errors = validate_document(Experiment, document, str(file))
        errors += spec_errors
        if experiment and not spec_errors:
            loaded.append(LoadedExperiment(file, experiment))
    first_file: dict[str, Path] = {}
    for item in loaded:
        name = item.experiment.name
        if name in first_file:
            errors.append(
                SpecError(str(item.file), "name", f"experiment '{name}' is also defined in {first_file[name]}")
            )
        first_file.setdefault(name, item.file)
    return loaded, errors
