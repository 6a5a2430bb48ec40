"""The two domains (A, B), the two splits of their videos, and the directions of translation between them."""
DOMAINS = ("A", "B")
SPLITS = ("train", "test")
TARGET = {"A": "B", "B": "A"}  # the domain each one is translated into


def direction(source: str) -> str:
    """The name of the translation out of domain `source`: "A2B" or "B2A"."""
    return f"{source}2{TARGET[source]}"


def domains_of(direction_name: str) -> tuple[str, str]:
    """(source, target) of a direction name such as "A2B"."""
    source, target = direction_name.split("2")
    if TARGET.get(source) != target:
        raise ValueError(f"not a direction: {direction_name!r}")
    return source, target
