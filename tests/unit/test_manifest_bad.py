"""Hostile and broken manifests: each file under tests/data/manifests/bad must fail.

Each file starts with comment lines of the form
``# expect: <path> | <fragment> [| <fragment> ...]``, one per problem that the file
must produce. The loader must report exactly those problems: a problem matches when
it starts with ``<path>: `` and contains every fragment.
"""

from __future__ import annotations

import pathlib

import pytest

from recsync.errors import ManifestError
from recsync.manifest import MAX_FILE_BYTES, load_manifest, parse_manifest

BAD_DIR = pathlib.Path(__file__).parents[1] / "data" / "manifests" / "bad"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))

# Secret values written into bad files, which no message may contain.
SECRETS = {
    "inline_client_secret.yaml": "Sup3rS3cretValue!9",
    "inline_client_id.yaml": "5c1f3e0a-client-id-inline",
    "inline_password.yaml": "hunter2hunter2",
    "inline_token.yaml": "eyJhbGciOiJIUzI1NiJ9",
    "inline_credentials_string.yaml": "my-client-secret",
    "secret_in_env_key.yaml": "xK9$mP2!vQ7#rT4@wZ1%",
    "base_url_userinfo.yaml": "Pa55word!",
    "many_problems.yaml": "inline-secret-value",
}


def read_expectations(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """Return (path, fragments) for each ``# expect:`` line at the top of a file."""
    expectations = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect: "):
            problem_path, *fragments = line.removeprefix("# expect: ").split(" | ")
            expectations.append((problem_path, fragments))
    return expectations


def load_problems(path: pathlib.Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return caught.value


def matches(problem: str, problem_path: str, fragments: list[str]) -> bool:
    if not problem.startswith(f"{problem_path}: "):
        return False
    return all(fragment in problem for fragment in fragments)


def test_bad_files_at_least_thirty() -> None:
    assert len(BAD_FILES) >= 30


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.stem)
def test_bad_file_reports_expected(path: pathlib.Path) -> None:
    expectations = read_expectations(path)
    assert expectations, f"{path.name} has no '# expect:' line"

    error = load_problems(path)

    assert error.source == str(path)
    for problem_path, fragments in expectations:
        found = [p for p in error.problems if matches(p, problem_path, fragments)]
        assert found, (
            f"no problem at {problem_path!r} containing {fragments!r}; "
            f"problems: {error.problems}"
        )
    assert len(error.problems) == len(expectations), error.problems


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.stem)
def test_bad_file_problems_one_line(path: pathlib.Path) -> None:
    error = load_problems(path)

    for problem in error.problems:
        assert "\n" not in problem, problem


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_bad_file_hides_secret(name: str) -> None:
    error = load_problems(BAD_DIR / name)

    assert SECRETS[name] not in str(error)


def test_bad_many_problems_reported_together() -> None:
    error = load_problems(BAD_DIR / "many_problems.yaml")

    assert len(error.problems) == 8


def test_bad_file_too_large(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "large.yaml"
    path.write_text("version: 1\n" + "# padding\n" * (MAX_FILE_BYTES // 10))

    error = load_problems(path)

    assert error.problems[0].startswith("document: the file is larger than")


def test_bad_text_too_large() -> None:
    text = "version: 1\n" + "x" * MAX_FILE_BYTES

    with pytest.raises(ManifestError, match="larger than 1,048,576 bytes"):
        parse_manifest(text)


def test_bad_file_missing(tmp_path: pathlib.Path) -> None:
    error = load_problems(tmp_path / "absent.yaml")

    assert error.problems == [
        "document: file not found; check the path, or copy the example manifest"
    ]


def test_bad_file_directory(tmp_path: pathlib.Path) -> None:
    error = load_problems(tmp_path)

    assert "is a directory" in error.problems[0]


def test_bad_wide_alias_fanout() -> None:
    # Each level is a list of ten aliases to the level below: 10**6 values.
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{aliases}]")
    text = "\n".join(levels) + "\n"

    with pytest.raises(ManifestError, match="expands to more than"):
        parse_manifest(text)


def test_bad_merge_key_doubling() -> None:
    # Merge keys that double a mapping at each level.
    lines = ["m0: &m0 {k0: v, k1: v}"]
    for level in range(1, 30):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}]}}")
    text = "\n".join(lines) + "\n"

    with pytest.raises(ManifestError, match="expands to more than"):
        parse_manifest(text)


def test_bad_alias_chain_too_deep() -> None:
    # Every level is shallow, but the aliases chain 30 levels of 3 lists each.
    lines = ["l0: &l0 [[[x]]]"]
    for level in range(1, 30):
        lines.append(f"l{level}: &l{level} [[[*l{level - 1}]]]")
    text = "\n".join(lines) + "\n"

    with pytest.raises(ManifestError, match="deeper than 64 levels"):
        parse_manifest(text)


def test_bad_deep_block_nesting() -> None:
    text = "".join("  " * depth + f"k{depth}:\n" for depth in range(200))

    with pytest.raises(ManifestError, match="nested deeper than 64 levels"):
        parse_manifest(text)


def test_bad_control_character() -> None:
    with pytest.raises(ManifestError, match="character #x0007 is not allowed"):
        parse_manifest("version: 1\norgs: [\x07]\n")


def test_bad_mapping_not_dict() -> None:
    with pytest.raises(ManifestError, match="is a list, not a mapping"):
        parse_manifest("[1, 2]")
