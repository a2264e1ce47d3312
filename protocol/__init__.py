"""veilface.protocol: what crosses a process boundary between client, matcher and authority.

Paths, headers, request and response models, problem types and the face-model table. It imports
``veilface.crypto`` only: never FastAPI, httpx or another role's code (docs/design.md, "Architecture").
"""
