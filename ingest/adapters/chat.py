"""chat/completions, completions, responses: OpenAI's text-generation bodies (results:
schemas.results.chat).

Models take `{messages: [{role, content}]}` (roles system, user, assistant) or `{prompt}`,
with max_tokens, temperature, top_p, stop and seed. Tokens stream as the prediction's
`output` events, not in the job: an async request does not stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from inferhook.catalog import CatalogEntry
from ingest.adapters.base import Adapter, ModelRequest, TaskBody, examples
from schemas.tasks import TaskKind

Role = Literal["system", "developer", "user", "assistant"]
Stop = Annotated[str, StringConstraints(min_length=1)]
NO_STREAM = ("async requests do not stream: follow the prediction's events "
             "(GET /v1/predictions/{id}/stream) for tokens as they come")


class Sampling(TaskBody):
    """Sampling fields the three bodies share."""

    temperature: float | None = Field(default=None, ge=0, le=2, description="0 = greedy")
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool | None = Field(default=None, description="false or absent: async requests do "
                                                          "not stream (see the prediction's events)")
    user: str | None = Field(default=None, max_length=256, description="Accepted and ignored")

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(NO_STREAM)
        return value


class Generation(Sampling):
    """Fields of chat/completions and completions."""

    stop: Stop | Annotated[list[Stop], Field(max_length=4)] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: Literal[1] | None = Field(default=None, description="1 (one choice per request)")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Role = Field(description="developer is taken as system")
    content: str | list[TextPart]
    name: str | None = Field(default=None, max_length=64, description="Accepted and ignored")


class ChatBody(Generation):
    """Body of `POST /v1/async/chat/completions` (text messages only)."""

    model_config = examples({
        "model": "inferhook/smollm2", "max_tokens": 8,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]})

    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Wins over max_tokens")


class CompletionBody(Generation):
    """Body of `POST /v1/async/completions`."""

    model_config = examples({"model": "inferhook/smollm2", "prompt": "Once upon", "max_tokens": 8})

    prompt: Annotated[str, StringConstraints(min_length=1)] | Annotated[
        list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1, max_length=1)]
    max_tokens: int = Field(default=16, ge=1, description="16 unless told (as OpenAI's)")
    echo: Literal[False] | None = None


class InputText(BaseModel):
    type: Literal["input_text", "output_text"]
    text: str


class InputMessage(BaseModel):
    type: Literal["message"] | None = None
    role: Role
    content: str | list[InputText]


class ResponsesBody(Sampling):
    """Body of `POST /v1/async/responses` (text input only)."""

    model_config = examples({"model": "inferhook/smollm2", "input": "Hi", "max_output_tokens": 8})

    input: Annotated[str, StringConstraints(min_length=1)] | Annotated[
        list[InputMessage], Field(min_length=1, max_length=1000)]
    instructions: str | None = Field(default=None, description="Put first, as a system message")
    max_output_tokens: int | None = Field(default=None, ge=1)
    store: bool | None = Field(default=None, description="Accepted; the result is kept for its TTL")


def _text(content: str | list[TextPart] | list[InputText]) -> str:
    return content if isinstance(content, str) else "\n".join(part.text for part in content)


def _message(role: Role, content: str | list[TextPart] | list[InputText]) -> dict[str, str]:
    return {"role": "system" if role == "developer" else role, "content": _text(content)}


def _sampling(body: Sampling, max_tokens: int | None, stop: str | list[str] | None = None,
              seed: int | None = None) -> dict[str, Any]:
    given = {"max_tokens": max_tokens, "temperature": body.temperature, "top_p": body.top_p,
             "stop": stop, "seed": seed}
    return {name: value for name, value in given.items() if value is not None}


def chat(body: ChatBody, entry: CatalogEntry) -> ModelRequest:
    messages = [_message(m.role, m.content) for m in body.messages]
    return ModelRequest({"messages": messages, **_sampling(
        body, body.max_completion_tokens or body.max_tokens, body.stop, body.seed)})


def completion(body: CompletionBody, entry: CatalogEntry) -> ModelRequest:
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    return ModelRequest({"prompt": prompt, **_sampling(body, body.max_tokens, body.stop, body.seed)})


def responses(body: ResponsesBody, entry: CatalogEntry) -> ModelRequest:
    given = ([InputMessage(role="user", content=body.input)] if isinstance(body.input, str)
             else body.input)
    messages = [_message(m.role, m.content) for m in given]
    if body.instructions:
        messages.insert(0, {"role": "system", "content": body.instructions})
    return ModelRequest({"messages": messages, **_sampling(body, body.max_output_tokens)})


CHAT = Adapter(TaskKind.CHAT_COMPLETIONS, ChatBody, chat)
COMPLETIONS = Adapter(TaskKind.COMPLETIONS, CompletionBody, completion)
RESPONSES = Adapter(TaskKind.RESPONSES, ResponsesBody, responses,
                    fields={"messages": ("input",), "max_tokens": ("max_output_tokens",)})
