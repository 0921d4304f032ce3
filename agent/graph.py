"""Wiring only: the lesson graph and its per-scene subgraph.

    START -> plan -> review -> write -> fit -> [Send: scene x N] -> measure -> assemble -> quiz -> record -> END
              ^         |                          ^                    |
              +-(notes)-+ (--review only)          +-- (rewritten or retimed scenes; bounded)

    scene:  START -> narrate ------------------------------\\
            START -> illustrate -> critique -(retry)-> illustrate
                                            -(done)--> choose -> compose -> END
            (compose waits for both narrate and choose)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph

from lessonforge.agent import nodes, quiz, record
from lessonforge.agent.graph_context import LessonContext, guarded
from lessonforge.agent.state import LessonInput, LessonOutput, LessonState, SceneOutput, SceneState


def _wired(served: bool) -> Callable[[Any], Any]:
    """How a node is added: as it is, or, in the served graph, guarded (a raise ends the run well)."""
    return guarded if served else (lambda node: node)


def build_scene_graph(*, served: bool = False) -> Any:
    g = StateGraph(SceneState, context_schema=LessonContext, output_schema=SceneOutput)
    node = _wired(served)
    g.add_node("narrate", node(nodes.narrate))
    g.add_node("illustrate", node(nodes.illustrate))
    g.add_node("critique", node(nodes.critique))
    g.add_node("choose", node(nodes.choose))
    g.add_node("compose", node(nodes.compose))
    g.add_edge(START, "narrate")
    g.add_edge(START, "illustrate")
    g.add_edge("illustrate", "critique")
    g.add_conditional_edges("critique", nodes.after_critique, ["illustrate", "choose"])
    g.add_edge(["narrate", "choose"], "compose")
    g.add_edge("compose", END)
    return g.compile(name="scene")


def build_graph(checkpointer: Any = None, *, served: bool = False) -> Any:
    """The lesson graph. `lessonforge.agent.run` gives it any part of the state (a script to produce, targets...);
    the served copy below takes a `LessonInput` (the request's fields), which its first node turns into state,
    and its nodes are guarded: a failure is recorded in lesson.json and the lesson folder let go."""
    g = StateGraph(LessonState, context_schema=LessonContext, input_schema=LessonInput if served else LessonState,
                   output_schema=LessonOutput)
    node = _wired(served)
    g.add_node("plan", node(nodes.plan))
    g.add_node("review", node(nodes.review))
    g.add_node("write", node(nodes.write))
    g.add_node("fit", node(nodes.fit))
    g.add_node("scene", build_scene_graph(served=served))
    g.add_node("measure", node(nodes.measure))
    g.add_node("assemble", node(nodes.assemble))
    g.add_node("quiz", node(quiz.write_quiz))
    g.add_node("record", node(record.record))
    if served:
        g.add_node("begin", node(nodes.begin))
        g.add_edge(START, "begin")
        g.add_edge("begin", "plan")
    else:
        g.add_edge(START, "plan")
    g.add_edge("plan", "review")
    g.add_conditional_edges("review", nodes.after_review, ["plan", "write"])
    g.add_edge("write", "fit")
    g.add_conditional_edges("fit", nodes.fan_out, ["scene"])
    g.add_edge("scene", "measure")
    g.add_conditional_edges("measure", nodes.after_measure, ["scene", "assemble"])
    g.add_edge("assemble", "quiz")
    g.add_edge("quiz", "record")
    g.add_edge("record", END)
    return g.compile(checkpointer=checkpointer, name="lessonforge")


# `langgraph dev` and Studio load this (see langgraph.json); a run's context is a LessonContext (JSON).
graph = build_graph(served=True)
