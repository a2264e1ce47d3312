"""Every option of the ``veilface`` command, defined once as a Typer ``Annotated`` alias.

Commands give the default: ``server: Server = DEFAULT_SERVER``. Aliases whose value may be unset in one
command and not in another take the type as a parameter: ``preset: Preset[str | None] = None``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from veilface.crypto import PRESETS

T = TypeVar("T")

# -- output -------------------------------------------------------------------------------------------------

Json = Annotated[bool, typer.Option("--json", help="Print only a JSON document on standard output.")]

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

Preset = Annotated[T, typer.Option("--preset", help=f"CKKS parameter preset ({', '.join(PRESETS)}).")]
ModelId = Annotated[T, typer.Option("--model-id", help="Embedding model the deployment uses.")]
Dimension = Annotated[T, typer.Option("--dimension", help="Embedding dimension of that model.")]

# -- services -----------------------------------------------------------------------------------------------

Keys = Annotated[Path, typer.Option("--keys", metavar="DIR", help="Key directory (see each command).")]
Data = Annotated[
    T,
    typer.Option("--data", metavar="DIR", help="Data directory: a service's, or the one 'serve all' splits in two."),
]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]
CertFile = Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM), passed to uvicorn.")]
KeyFile = Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM), passed to uvicorn.")]
# Set by the supervisor of 'serve all' and server.launch: an inherited listening socket and the supervisor's pid.
Fd = Annotated[int | None, typer.Option("--fd", hidden=True)]
ParentPid = Annotated[int | None, typer.Option("--exit-with-parent", hidden=True)]
