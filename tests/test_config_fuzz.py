"""Whatever a person types as a setting or a config file, the answer is a config or one ConfigError."""

import dataclasses

import hypothesis.strategies as st
from hypothesis import given, settings

from dagger.config import ConfigError, RunConfig, load_config


def keys(obj, prefix=""):
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out += keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [f"{prefix}{f.name}"]
    return out


KEYS = keys(RunConfig())
VALUES = st.one_of(
    st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([".nan", "-.inf", "true", "null", "~", "[]", "{}", "[1, [2]]", "{a: 1}", "!!python/none ''",
                     "robots={", "'x'", "0", "-1", "1e309", "[" * 60, "&a [*a]", "9" * 5000]),
    st.text(max_size=12),
)


def accepted_or_refused(overrides: list[str], path=None) -> None:
    try:
        load_config(path, overrides)
    except ConfigError as err:
        assert "\n" not in str(err) and str(err)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_value_for_any_key(key, value):
    accepted_or_refused([f"{key}={value}"])


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=30))
def test_any_override_text(text):
    accepted_or_refused([text])


@settings(max_examples=60, deadline=None)
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_config_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(content)
    accepted_or_refused([], path)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(KEYS), suffix=st.sampled_from(["", ".x", ".", "..", ". y"]), prefix=st.text(max_size=4),
       value=VALUES)
def test_keys_that_go_too_deep_or_wrong(key, suffix, prefix, value):
    accepted_or_refused([f"{prefix}{key}{suffix}={value}"])


def test_the_listed_bad_inputs_each_name_what_is_wrong():
    cases = {"seed=-1": "'seed'", "learner.publish_every=0": "publish_every", "policy.lr=-1": "policy.lr",
             "robots={": "not valid YAML", "robots=!!python/none ''": "not valid YAML",
             "operator.attention=0": "operator.attention", "policy.hidden=0": "policy.hidden",
             "gate.threshold=.inf": "gate.threshold", "gate.name.x=1": "gate.name", "robots.x=1": "robots",
             "robots=100000": "'robots' must be in [1, 1000]", "policy.hidden=10000000": "policy.hidden",
             "steps=" + "9" * 5000: "cannot read a value"}
    for override, named in cases.items():
        try:
            load_config(None, [override])
        except ConfigError as err:
            assert named in str(err), (override, str(err))
        else:
            raise AssertionError(f"{override} was accepted")
