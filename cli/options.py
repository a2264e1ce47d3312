"""Every option of the ``veilface`` command, defined once as a Typer ``Annotated`` alias.

Commands give the default: ``server: Server = DEFAULT_SERVER``. Aliases whose value may be unset in one
command and not in another take the type as a parameter: ``preset: Preset[str | None] = None``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from veilface.crypto import PRESETS

T = TypeVar("T")


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """An option's parser that accepts only ``values`` (a usage error, exit 2, otherwise)."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return parse


# -- output -------------------------------------------------------------------------------------------------

Json = Annotated[bool, typer.Option("--json", help="Print only a JSON document on standard output.")]
# Benchmarks print their markdown table and write the JSON and the chart to files.
JsonPath = Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")]
PlotPath = Annotated[Path | None, typer.Option("--plot", help="Write a PNG chart here.")]

# -- client: which matcher, as whom, trusting which authority -----------------------------------------------

Server = Annotated[str, typer.Option("--server", envvar="VEILFACE_SERVER", help="Matcher URL.")]
Token = Annotated[
    str, typer.Option("--token", envvar="VEILFACE_TOKEN", help="Operator bearer token.", show_default=False)
]
AuthorityKey = Annotated[
    Path | None,
    typer.Option(
        "--authority-key",
        envvar="VEILFACE_AUTHORITY_KEY",
        help="The authority's signing.pub, obtained out of band; without it nothing is encrypted.",
    ),
]
Replace = Annotated[bool, typer.Option("--replace", help="Replace existing templates (admin scope).")]

# -- the face pipeline --------------------------------------------------------------------------------------


class FaceBackend(str, Enum):
    """The face backends of ``veilface.client.faces`` (a test keeps the two lists equal)."""

    dlib = "dlib"
    insightface = "insightface"


Backend = Annotated[FaceBackend, typer.Option("--backend", help="Face model backend.")]
Backends = Annotated[
    list[FaceBackend] | None, typer.Option("--backend", help="Backend(s) to time; default all available.")
]
Model = Annotated[
    Path | None,
    typer.Option(
        "--model",
        metavar="PATH",
        help="insightface only: a model pack directory or a recognition .onnx file "
        "(default $VEILFACE_INSIGHTFACE_MODEL, then ~/.insightface/models/buffalo_l).",
    ),
]
TakeLargest = Annotated[
    bool,
    typer.Option(
        "--take-largest",
        help="Use the largest face of an image with several, as enrolment does (at least 64 px across).",
    ),
]


def check_model(backend: FaceBackend, model: Path | None) -> None:
    """--model names an insightface model: refuse it with another backend as a usage error."""
    if model is not None and backend is not FaceBackend.insightface:
        raise typer.BadParameter("applies to --backend insightface only", param_hint="--model")


# -- keys ---------------------------------------------------------------------------------------------------

PRESET_NAMES = sorted(PRESETS)
# The key ceremony checks the name it is given (an unknown one exits 3); a benchmark takes only a known one (2).
Preset = Annotated[T, typer.Option("--preset", help=f"CKKS parameter preset ({', '.join(PRESETS)}).")]
KnownPreset = Annotated[
    str, typer.Option("--preset", parser=choice(PRESET_NAMES), metavar="|".join(PRESET_NAMES), help="CKKS preset.")
]
Presets = Annotated[
    list[str] | None,
    typer.Option(
        "--preset", parser=choice(PRESET_NAMES), metavar="|".join(PRESET_NAMES), help="Preset(s) to run; default all."
    ),
]
ModelId = Annotated[T, typer.Option("--model-id", help="Embedding model the deployment uses.")]
Dimension = Annotated[T, typer.Option("--dimension", help="Embedding dimension of that model.")]

# -- services -----------------------------------------------------------------------------------------------

Keys = Annotated[Path, typer.Option("--keys", metavar="DIR", help="Key directory (see each command).")]
Data = Annotated[
    T,
    typer.Option("--data", metavar="DIR", help="Data directory: a service's, or the one 'serve all' splits in two."),
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", metavar="URL", help="The service's database URL, instead of --data.")
]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]
CertFile = Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM), passed to uvicorn.")]
KeyFile = Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM), passed to uvicorn.")]
# Set by the supervisor of 'serve all' and server.launch: an inherited listening socket and the supervisor's pid.
Fd = Annotated[int | None, typer.Option("--fd", hidden=True)]
ParentPid = Annotated[int | None, typer.Option("--exit-with-parent", hidden=True)]
