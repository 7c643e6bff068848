"""Benchmark output: print the tables and write them, with the command that made them, into docs/performance.md.

Each script owns one marked block of that file (`<!-- bench:NAME:begin -->` … `<!-- bench:NAME:end -->`) and
replaces only that block, so hand-written analysis around it stays. A block that is missing is appended.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
CLIENTS = ("kafka-python", "confluent")


def add_doc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/performance.md alone")


def add_client_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", default=CLIENTS[0], choices=CLIENTS, help="the worker's Kafka client")


def machine() -> str:
    return f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):  # a script outside the checkout keeps its path as given
        script = script.resolve().relative_to(DOC.parent.parent)
    return shlex.join(["python", str(script), *sys.argv[1:]])


class Report:
    """Lines printed as they come and kept for the document."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.line("| " + " | ".join(header) + " |")
        self.line("|" + " --- |" * len(header))
        for row in rows:
            self.line("| " + " | ".join(row) + " |")

    def save(self, device: str | None = None, doc: Path = DOC) -> None:
        where = device or f"this machine ({machine()})"
        body = "\n".join([f"`{command_line()}` — written by the script on {time.strftime('%Y-%m-%d')}, {where}.",
                          "", *self.lines]).strip()
        write_section(doc, self.name, body)
        print(f"\n(written to {doc}, block '{self.name}')", file=sys.stderr)


def write_section(doc: Path, name: str, body: str) -> None:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    text = doc.read_text() if doc.exists() else "# Performance\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    doc.write_text(text)
