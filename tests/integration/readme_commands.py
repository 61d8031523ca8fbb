"""The shell commands of README.md, and how a reader fills in what they leave open.

README examples talk to `make run`'s platform on localhost:8080 and leave out what the
reader has at hand: the demo key (`KEY=grk_...`), a password (`password=...`), the
answers of earlier commands (`$ACCESS`, `$APP`, `ev_01kb...`). `Reader` plays that
reader against a real stack: it runs each command in bash, in order, keeps the
variables the README assigns, and fills the gaps from the demo credentials and from
what earlier commands answered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.demo_identity import DemoCredentials
from devstack.stack import DEFAULT_EDGE_PORT, DEFAULT_GRPC_PORTS, Stack

README = Path(__file__).resolve().parents[2] / "README.md"
GRPCURL = Path(__file__).resolve().parent / "grpcurl_stand_in.py"
XINGMING = "sh/jiading/anting/xingming"
TALKS_TO_PLATFORM = re.compile(r"\b(curl|ogrinfo|grpcurl)\b|^grassroots ", re.M)
STATUS = re.compile(r"^HTTP (\d{3})$", re.M)


@dataclass(frozen=True)
class Command:
    block: int  # which shell block of README.md, counted from 0
    line: int  # its first line in README.md
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text.splitlines()[0]}"


def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, body) of every ```sh block."""
    blocks = []
    for match in re.finditer(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.M | re.S):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


def _code(line: str, quote: str | None) -> tuple[str, str | None]:
    """The line without its comment, and the quote still open at its end."""
    out = []
    previous = " "
    for char in line:
        if quote is None and char == "#" and previous.isspace():
            break
        if quote is None and char in "'\"":
            quote = char
        elif quote is not None and char == quote:
            quote = None
        out.append(char)
        previous = char
    return "".join(out), quote


def commands(text: str) -> list[Command]:
    """Every command of the blocks that talk to a running platform, continuation lines
    and multi-line quoted arguments joined."""
    found = []
    for number, (first_line, body) in enumerate(shell_blocks(text)):
        if not TALKS_TO_PLATFORM.search(body):
            continue
        pending: list[str] = []
        start = first_line
        quote: str | None = None
        for offset, line in enumerate(body.splitlines()):
            if not pending:
                start = first_line + offset
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
            code, quote = _code(line, quote)
            pending.append(line)
            if quote is None and not code.rstrip().endswith("\\"):
                found.append(Command(number, start, "\n".join(pending)))
                pending = []
        assert not pending, f"README.md:{start}: unterminated command"
    return found


# What a reader types for the tools a fresh machine may lack: GDAL's ogrinfo through
# the GDAL that pyogrio carries (same driver, same GDAL_HTTP_* settings), grpcurl
# through a stand-in that also works from reflection alone, and the SDK's `grassroots`
# command through this Python when the venv's bin is not on PATH.
PRELUDE = f"""
set -e
curl() {{ command curl -w '%{{stderr}}HTTP %{{http_code}}\\n' "$@"; }}
command -v grpcurl >/dev/null || grpcurl() {{ {sys.executable} {GRPCURL} "$@"; }}
command -v grassroots >/dev/null || grassroots() {{ {sys.executable} -m grassroots_sdk.cli "$@"; }}
command -v ogrinfo >/dev/null || ogrinfo() {{
    {sys.executable} -c 'import sys, pyogrio; layers = pyogrio.list_layers(sys.argv[-1]); \\
print("\\n".join(f"{{i + 1}}: {{name}}" for i, name in enumerate(layers[:, 0])))' "$@"
}}
"""


@dataclass
class Reader:
    """Runs README commands in order, as someone following it with `make run`'s output."""

    stack: Stack
    demo: DemoCredentials
    workdir: Path
    context: dict[str, str] = field(default_factory=dict)
    assignments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context["KEY"] = self.demo.app_keys[XINGMING]
        self.port = str(self.stack.config.gateway_port)

    def sign_in(self, username: str) -> None:
        answer = httpx.post(
            f"{self.stack.config.gateway_url}/v1/auth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": self.demo.account(username).password,
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        self.learn(answer.text)

    def fill(self, command: Command) -> str:
        """The command as the reader types it: placeholders filled, ports of this stack."""
        text = command.text
        for username in re.findall(r"username=([\w.-]+)", text):
            if "password=..." not in text:
                break  # the README gives the password (an account it created)
            text = text.replace(
                "password=...", f"password={self.demo.account(username).password}", 1
            )
        mentioned = [a.username for a in self.demo.accounts if f"{a.username}'s" in text]
        if mentioned:
            self.sign_in(mentioned[0])  # "xingming.secretary's access token"

        def known(name: str) -> str:
            assert name in self.context, f"nothing earlier tells the reader {name}"
            return self.context[name]

        text = re.sub(r"\b([A-Z][A-Z0-9_]*)=[\w-]*\.\.\.", lambda m: f"{m[1]}={known(m[1])}", text)
        if "ev_01kb..." in text:
            text = text.replace("ev_01kb...", known("EVENT"))
        if '"0c77..."' in text:
            text = text.replace('"0c77..."', json.dumps(known("ETAG")))
        text = text.replace("localhost:8080", f"127.0.0.1:{self.port}")
        text = text.replace(f"127.0.0.1:{DEFAULT_EDGE_PORT}", self.stack.config.edge_address)
        for name, port in self.stack.config.grpc_ports.items():
            text = text.replace(f"127.0.0.1:{DEFAULT_GRPC_PORTS[name]}", f"127.0.0.1:{port}")
        return text

    def run(self, command: Command) -> tuple[list[int], str]:
        """Run one command; (HTTP statuses it got, its output)."""
        text = self.fill(command)
        signed_in = SIGN_IN.match(_first_code_line(text))
        for attempt in range(SIGN_IN_ATTEMPTS if signed_in else 1):
            exports = "".join(f"{k}={_quote(v)}\n" for k, v in self.context.items())
            script = PRELUDE + exports + "".join(self.assignments) + text + "\n"
            if signed_in:
                script += f'printf "{VALUE_MARK}%s" "${signed_in[1]}"\n'
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=60,
                env={k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")},
            )
            busy = {429, 503} & {int(s) for s in STATUS.findall(done.stderr)}
            if done.returncode == 0 or not busy:
                break
            time.sleep(2 * (attempt + 1))  # "sign-in is busy; try again in a moment"
        assert done.returncode == 0, f"{command}\nexit {done.returncode}: {done.stderr[-2000:]}"
        output = done.stdout
        if signed_in:
            # A reader's shell keeps the token it got, it does not sign in again for
            # every later command (which, on a loaded machine, fills the sign-in queue).
            output, _, self.context[signed_in[1]] = output.rpartition(VALUE_MARK)
        elif ASSIGNMENT.fullmatch(_first_code_line(text)):
            self.assignments.append(text + "\n")
        self.learn(output)
        return [int(s) for s in STATUS.findall(done.stderr)], output

    def learn(self, output: str) -> None:
        """Remember what a reader would copy from an answer."""
        try:
            answer = json.loads(output)
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        if answer.get("password_change_required"):
            # A first sign-in with a password someone else set: the token only changes it.
            self.context["FIRST"] = answer["access_token"]
        elif "access_token" in answer:
            self.context["ACCESS"] = answer["access_token"]
            self.context["REFRESH"] = answer.get("refresh_token", "")
        if isinstance(answer.get("app"), dict):
            self.context["APP"] = answer["app"]["id"]
        if isinstance(answer.get("api_key"), dict):
            self.context["KEY_ID"] = answer["api_key"]["id"]
        if str(answer.get("key", "")).startswith("grd_"):
            self.context["DEVICE_KEY"] = answer["key"]
        if "/subscriptions/" in str(answer.get("name", "")):
            self.context["SUB"] = str(answer["name"]).rsplit("/", 1)[-1]
        if str(answer.get("id", "")).startswith("ev_") and "etag" in answer:
            self.context["EVENT"] = answer["id"]
            self.context["ETAG"] = answer["etag"]


# A variable set from a sign-in's answer (`W=$(curl ... /v1/auth/token | ...)`): its value
# is kept like an answer a reader copied, and a busy sign-in is tried again.
SIGN_IN = re.compile(r"([A-Z][A-Z0-9_]*)=\$\(curl .*/auth/token.*\)")
SIGN_IN_ATTEMPTS = 5
VALUE_MARK = "\n--readme-value--"

# A line that only sets one variable (`V=...`, `PLAN=$(...)`, `H="..."`): later commands
# repeat it, as a reader's shell keeps it. `A=1 B=2 command ...` runs a command with a
# temporary environment instead, and is not repeated (its output would be read again).
ASSIGNMENT = re.compile(r"""[A-Z][A-Z0-9_]*=(\$\(.*\)|"[^"]*"|'[^']*'|[^\s'"]+)""")


def _first_code_line(text: str) -> str:
    return text.splitlines()[0].split("  #")[0].strip()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
