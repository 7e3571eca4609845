"""Results of chat/completions, completions and responses (OpenAI's response bodies).

Models answer `{text, finish_reason: "stop"|"length", usage: {prompt_tokens,
completion_tokens, total_tokens}}`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.results.base import Finished, OutputMismatch

FINISH_REASONS = ("stop", "length")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: str


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class ResponseUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"] = "max_output_tokens"


class Response(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete"]
    incomplete_details: IncompleteDetails | None = None
    error: None = None
    model: str
    output: list[OutputMessage]
    usage: ResponseUsage


def _generated(done: Finished) -> tuple[str, str, Usage]:
    text, reason = done.output["text"], done.output["finish_reason"]
    if not isinstance(text, str) or reason not in FINISH_REASONS:
        raise OutputMismatch("expected text and a finish_reason of stop or length")
    return text, reason, Usage.model_validate(done.output["usage"])


def chat_result(done: Finished) -> Any:
    """A ChatCompletion as JSON data."""
    text, reason, usage = _generated(done)
    choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=reason)
    return ChatCompletion(id=f"chatcmpl-{done.id}", created=done.created, model=done.model,
                          choices=[choice], usage=usage).model_dump(mode="json")


def completion_result(done: Finished) -> Any:
    """A Completion as JSON data."""
    text, reason, usage = _generated(done)
    return Completion(id=f"cmpl-{done.id}", created=done.created, model=done.model,
                      choices=[CompletionChoice(text=text, finish_reason=reason)],
                      usage=usage).model_dump(mode="json")


def responses_result(done: Finished) -> Any:
    """A Response as JSON data (incomplete when the model ran out of tokens)."""
    text, reason, usage = _generated(done)
    status: Literal["completed", "incomplete"] = "completed" if reason == "stop" else "incomplete"
    message = OutputMessage(id=f"msg_{done.id}", status=status, content=[OutputText(text=text)])
    return Response(
        id=f"resp_{done.id}", created_at=done.created, status=status,
        incomplete_details=IncompleteDetails() if status == "incomplete" else None,
        model=done.model, output=[message],
        usage=ResponseUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                            total_tokens=usage.total_tokens),
    ).model_dump(mode="json")
