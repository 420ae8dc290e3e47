"""Request parameter checks with the API's error codes: a missing field is
``MissingParameter``, a wrong JSON type ``InvalidParameter``, a bad value
``InvalidParameterValue*``, an unknown field ``UnknownParameter``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vpcsim.apierror import ApiError
from vpcsim.ids import looks_like

Params = Mapping[str, Any]


def check_known(params: Params, known: set[str]) -> None:
    for key in params:
        if key not in known:
            raise ApiError("UnknownParameter", f"the parameter `{key}` is not recognized")


def _type_error(name: str, want: str, value: object) -> ApiError:
    return ApiError(
        "InvalidParameter",
        f"the parameter `{name}` must be {want}, got {type(value).__name__}",
    )


def opt_str(params: Params, name: str, *, max_len: int | None = None) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(name, "a string", value)
    if max_len is not None and len(value) > max_len:
        raise ApiError(
            "InvalidParameterValue.TooLong", f"the parameter `{name}` exceeds {max_len} characters"
        )
    return value


def req_str(params: Params, name: str, *, max_len: int | None = None) -> str:
    value = opt_str(params, name, max_len=max_len)
    if value is None or value == "":
        raise ApiError("MissingParameter", f"the parameter `{name}` is required")
    return value


def req_id(params: Params, name: str, prefix: str) -> str:
    value = req_str(params, name)
    if not looks_like(prefix, value):
        raise ApiError(
            "InvalidParameterValue.Malformed",
            f"the value `{value}` of parameter `{name}` is not a valid {prefix} id",
        )
    return value


def opt_int(
    params: Params,
    name: str,
    *,
    lo: int | None = None,
    hi: int | None = None,
    allow_str: bool = False,
) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if allow_str and isinstance(value, str):
        if not value.strip().isdigit():
            raise ApiError(
                "InvalidParameterValue", f"the parameter `{name}` must be a number, got {value!r}"
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, "an integer", value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ApiError(
            "InvalidParameterValue.Range",
            f"the parameter `{name}` must be in [{lo}, {hi}], got {value}",
        )
    return value


def opt_str_list(params: Params, name: str, *, max_items: int | None = None) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _type_error(name, "an array of strings", value)
    if max_items is not None and len(value) > max_items:
        raise ApiError(
            "InvalidParameterValue.LimitExceeded",
            f"the parameter `{name}` holds {len(value)} items, at most {max_items} allowed",
        )
    return list(value)


def opt_filters(params: Params, known: set[str]) -> dict[str, list[str]] | None:
    """``Filters`` [{Name, Values}] → {name: values}; names AND, values OR."""
    value = params.get("Filters")
    if value is None:
        return None
    if not isinstance(value, list):
        raise _type_error("Filters", "an array of Filter", value)
    out: dict[str, list[str]] = {}
    for item in value:
        if not isinstance(item, dict):
            raise _type_error("Filters", "an array of Filter objects", item)
        name = item.get("Name")
        values = item.get("Values")
        if not isinstance(name, str) or not name:
            raise ApiError("MissingParameter", "Filters.Name is required")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _type_error(f"Filters[{name}].Values", "an array of strings", values)
        if name not in known and not (name.startswith("tag:") and "tag:*" in known):
            raise ApiError(
                "InvalidParameter.FilterNotSupported",
                f"the filter `{name}` is not supported",
            )
        out.setdefault(name, []).extend(values)
    return out


def tags_param(params: Params, name: str = "Tags") -> dict[str, str]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _type_error(name, "an array of Tag", value)
    out: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise _type_error(name, "an array of {Key, Value}", item)
        val = item.get("Value", "")
        if not isinstance(val, str):
            raise _type_error(f"{name}.Value", "a string", val)
        out[item["Key"]] = val
    return out
