"""Agent tasks as LangGraph graphs: a model node that spends only through the task's AgentContext, a tool node,
routing on tool calls, step and tool-call limits. Every superstep is checkpointed (thread = the task), so a
worker killed mid-run goes on from the last checkpoint when the task is delivered again; a model call is keyed
by (task, node, step) with the step read from the graph's state (the assistant messages so far), so a call made
before the crash is answered again from the context's record and not paid twice."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from ...domain.agents import AGENTS, AgentLimits, AgentOutcome, approves, budget_question
from ...domain.errors import BudgetExhausted, ContextTooLong
from ...ports import AgentContext
from .agent_tools import TOOLS, call_tool


@dataclass(frozen=True)
class AgentSpec:
    name: str
    instructions: str
    tools: tuple[str, ...]
    max_tokens: int = 1024


SPECS: dict[str, AgentSpec] = {spec.name: spec for spec in (
    AgentSpec("research", "You research a question for the user. Look through their earlier conversations and "
              "the documents they name before you answer; say what you found and where.",
              ("recall", "read_document", "arithmetic", "start_image_task", "look_at_image")),
    AgentSpec("code", "You write and explain code for the user. Read the documents they name; use the "
              "arithmetic tool for any calculation instead of guessing. Answer with the code and a short note.",
              ("read_document", "arithmetic")),
    AgentSpec("analysis", "You analyse data for the user: read their documents, compute every figure with the "
              "arithmetic tool, and answer with the figures and what they mean.",
              ("read_document", "arithmetic", "recall", "start_image_task", "look_at_image")),
)}
if set(SPECS) != set(AGENTS):
    raise RuntimeError("every agent of domain.agents.AGENTS needs a spec here, and only those")


class AgentState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]  # OpenAI wire messages, system and goal first
    tool_calls: int
    ended: dict[str, str] | None  # {"status": "stopped" | "cancelled", "reason": ..., "detail"?: ...} when a node
    # ended it early


@dataclass(frozen=True)
class Run:
    """What a run's nodes need and the checkpoint must not hold: the caller's context and the limits."""

    context: AgentContext
    limits: AgentLimits
    spec: AgentSpec


def model_steps(messages: list[dict[str, Any]]) -> int:
    """The model calls made so far: the step of the next call, the same on every replay of the same state."""
    return sum(1 for message in messages if message["role"] == "assistant")


def _model(state: AgentState, runtime: Runtime[Run]) -> dict[str, Any]:
    run = runtime.context
    if run.context.cancelled():
        return {"ended": {"status": "cancelled", "reason": "cancelled by the user"}}
    step = model_steps(state["messages"])
    if step >= run.limits.max_steps:
        return {"ended": {"status": "stopped", "reason": f"step limit ({run.limits.max_steps}) reached"}}
    run.context.progress(step / run.limits.max_steps, f"{run.spec.name}: step {step + 1}")
    tools = [TOOLS[name].schema() for name in run.spec.tools]
    while True:
        try:
            reply = run.context.complete("model", step, state["messages"], tools, run.spec.max_tokens)
            break
        except ContextTooLong:
            if step == 0:  # the goal alone is too long: the request's fault, refused as it is
                raise
            # tool results made the conversation too long: a limit reached, as the others stop it
            return {"ended": {"status": "stopped", "reason": "the conversation grew past the model's context"}}
        except BudgetExhausted as over:
            if not run.limits.approval_to_exceed:
                return {"ended": {"status": "stopped", "reason": "credit limit reached", "detail": over.detail}}
            question, asked = budget_question(int(over.context.get("spent", 0)), int(over.context.get("limit", 0)),
                                              int(over.context.get("needed", 0)))
            # pauses here (checkpointed); a run with the user's answer comes back to this line with it
            if not approves(interrupt({"question": question, "approve_up_to": asked})):
                return {"ended": {"status": "stopped", "reason": "more credits were not approved"}}
            # approved: the task flow raised the limit before resuming; if it did not, this asks again
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    elif run.context.cancelled():  # a cancel while the last call ran: ended as asked, with the answer paid for
        return {"messages": [message], "ended": {"status": "cancelled", "reason": "cancelled by the user"}}
    return {"messages": [message]}


def _tools(state: AgentState, runtime: Runtime[Run]) -> dict[str, Any]:
    run = runtime.context
    if run.context.cancelled():
        return {"ended": {"status": "cancelled", "reason": "cancelled by the user"}}
    calls = state["messages"][-1].get("tool_calls") or []
    if state["tool_calls"] + len(calls) > run.limits.max_tool_calls:
        return {"ended": {"status": "stopped", "reason": f"tool call limit ({run.limits.max_tool_calls}) reached"}}
    made = state["tool_calls"]  # checkpointed: the same numbers when a resumed run makes these calls again
    results = [{"role": "tool", "tool_call_id": call.get("id", ""),
                "content": call_tool(run.context, run.spec.tools, call.get("function", {}).get("name", ""),
                                     call.get("function", {}).get("arguments", ""), f"{made + n}:{call.get('id', '')}")}
               for n, call in enumerate(calls, 1)]
    return {"messages": results, "tool_calls": state["tool_calls"] + len(calls)}


def _after_model(state: AgentState) -> str:
    if state["ended"] is None and state["messages"][-1].get("tool_calls"):
        return "tools"
    return END


def _after_tools(state: AgentState) -> str:
    return END if state["ended"] is not None else "model"


def agent_graph() -> StateGraph[AgentState, Run, AgentState, AgentState]:
    """model → (tool calls?) tools → model … → END; a node that hits a limit or a cancel ends the run."""
    graph = StateGraph(AgentState, context_schema=Run)
    graph.add_node("model", _model)
    graph.add_node("tools", _tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", _after_model, ["tools", END])
    graph.add_conditional_edges("tools", _after_tools, ["model", END])
    return graph


def partial_result(messages: list[dict[str, Any]]) -> str:
    """What an agent stopped early has to show: the last thing it said and every tool result since."""
    said, found = "", list[str]()
    for message in messages:
        if message["role"] == "assistant" and message.get("content"):
            said, found = message["content"], []
        elif message["role"] == "tool":
            found.append(message["content"])
    return "\n".join(part for part in [said, *found] if part)


def thread_of(context: AgentContext) -> str:
    """The checkpoint thread of a task: the owner's uid (which holds no ':') keeps two users' tasks apart even
    if their request ids were the same."""
    return f"{context.uid}:{context.task_id}"


class LangGraphAgents:
    """The AgentRunner: the three agents compiled once on a checkpointer (SqliteSaver locally, Firestore in
    production), every superstep persisted before the next one starts."""

    def __init__(self, checkpointer: BaseCheckpointSaver) -> None:
        self.checkpointer = checkpointer
        self.graph: CompiledStateGraph[AgentState, Run, AgentState, AgentState] = agent_graph().compile(
            checkpointer=checkpointer)

    def run(self, context: AgentContext, agent: str, goal: str, *, limits: AgentLimits,
            resume: object | None = None) -> AgentOutcome:
        spec = SPECS.get(agent)
        if spec is None:
            raise ValueError(f"unknown agent {agent!r}: one of {', '.join(AGENTS)}")
        config: RunnableConfig = {"configurable": {"thread_id": thread_of(context)},
                                  "recursion_limit": 2 * limits.max_steps + 4}
        before = self.graph.get_state(config)
        payload: Any
        if not before.values:  # a new task
            payload = {"messages": [{"role": "system", "content": spec.instructions},
                                    {"role": "user", "content": goal}], "tool_calls": 0, "ended": None}
        elif before.interrupts:  # waiting for the user: go on only with an answer
            if resume is None:
                return self._outcome(before)
            payload = Command(resume=resume)
        elif before.next:  # a redelivery after a crash: on from the last checkpoint
            payload = None
        else:  # finished already: the same outcome again
            return self._outcome(before)
        self.graph.invoke(payload, config, context=Run(context, limits, spec), durability="sync")
        return self._outcome(self.graph.get_state(config))

    @staticmethod
    def _outcome(snapshot: Any) -> AgentOutcome:
        state: AgentState = snapshot.values
        messages = state["messages"]
        steps, tool_calls = model_steps(messages), state["tool_calls"]
        if snapshot.interrupts:
            asked = snapshot.interrupts[0].value
            return AgentOutcome("waiting", partial_result(messages), True, steps, tool_calls,
                                reason="credit limit reached", question=asked["question"],
                                approve_up_to=asked["approve_up_to"])
        ended = state["ended"]
        if ended is not None:
            return AgentOutcome(ended["status"], partial_result(messages), True, steps,  # type: ignore[arg-type]
                                tool_calls, reason=ended["reason"], detail=ended.get("detail"))
        return AgentOutcome("done", messages[-1].get("content") or "", False, steps, tool_calls)
