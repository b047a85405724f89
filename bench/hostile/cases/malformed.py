"""Frames that break the wire format or the chunk schema: each must be refused with its reason code
and leave nothing in the stream or the counters."""

from __future__ import annotations

import numpy as np

from hostile import wire
from hostile.cases.common import one_frame
from hostile.registry import REGISTRY


def _set(path: str, value):
    def make():
        message = wire.chunk(done=True)
        target = message
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        if value is _DROP:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value() if callable(value) else value
        return message

    return make


_DROP = object()
_f32 = np.float32


def _obs(a):  # obs replaced by array a
    return _set("obs", lambda: wire.arr(a))


VARIANTS = [
    # name, doc, frame maker, wanted reason code
    ("text_frame", "a text frame after the hello", lambda: '{"type": "chunk"}', "malformed"),
    ("not_msgpack", "binary bytes that are not msgpack", lambda: b"\xc1\xc1\xc1garbage", "malformed"),
    ("msgpack_int", "msgpack of a bare integer, not a map", lambda: wire.raw(42), "malformed"),
    ("msgpack_list", "msgpack of a list, not a map", lambda: wire.raw(["chunk"]), "malformed"),
    ("no_type", "a map without 'type'", lambda: wire.raw({"id": "x"}), "malformed"),
    ("type_not_str", "a map whose 'type' is a number", lambda: wire.raw({"type": 7}), "malformed"),
    ("unknown_type", "an unknown message type", lambda: wire.raw({"type": "gimme", "id": "u1"}), "schema"),
    ("int_map_key", "a map with an integer key (strict map keys)", lambda: wire.raw({"type": "chunk", 1: 2}), "malformed"),
    ("ext_type", "a msgpack ext value inside a chunk", lambda: wire.raw({"type": "chunk", "x": __import__("msgpack").ExtType(5, b"abc")}), "malformed"),
    ("trailing_bytes", "a valid chunk followed by extra bytes", lambda: wire.raw(wire.chunk()) + b"\x00\x01", "malformed"),
    ("missing_id", "a chunk without an id", _set("id", _DROP), "schema"),
    ("id_too_long", "a chunk id of 81 characters", _set("id", "a" * 81), "schema"),
    ("id_bad_chars", "a chunk id with a slash and spaces", _set("id", "../x y"), "schema"),
    ("version_negative", "model_version -1", _set("model_version", -1), "model_version"),
    ("version_bool", "model_version true (a bool is not an int)", _set("model_version", True), "schema"),
    ("version_2p53", "model_version 2**53", _set("model_version", 2**53), "model_version"),
    ("terminated_int", "terminated given as 1, not a bool", _set("terminated", 1), "schema"),
    ("actions_not_array", "actions as a plain list", _set("actions", [0, 1, 0]), "schema"),
    ("array_extra_key", "an array map with an extra key", _set("rewards", lambda: {**wire.arr(np.ones(8, _f32)), "x": 1}), "schema"),
    ("dtype_object", "an array of dtype '|O' (pickled objects)", _set("rewards", {"dtype": "|O", "shape": [8], "data": b"\0" * 64}), "dtype"),
    ("dtype_big_endian", "an array of dtype '>f4'", _set("rewards", {"dtype": ">f4", "shape": [8], "data": b"\0" * 32}), "dtype"),
    ("shape_5d", "an array of five dimensions", _set("rewards", {"dtype": "<f4", "shape": [1, 1, 1, 1, 8], "data": b"\0" * 32}), "shape"),
    ("shape_negative", "an array with a negative dimension", _set("rewards", {"dtype": "<f4", "shape": [-8], "data": b""}), "shape"),
    ("data_short", "an array whose data is shorter than its shape", _set("rewards", {"dtype": "<f4", "shape": [8], "data": b"\0" * 31}), "shape"),
    ("data_as_str", "array data as a string, not bytes", _set("rewards", {"dtype": "<f4", "shape": [1], "data": "abcd"}), "schema"),
    ("obs_float64", "observations of float64 on a float32 campaign", _obs(np.zeros((9, 4), np.float64)), "dtype"),
    ("obs_wrong_rows", "observations with T rows instead of T+1", _obs(np.zeros((8, 4), _f32)), "shape"),
    ("actions_float", "actions of float32", _set("actions", lambda: wire.arr(np.zeros(8, _f32))), "dtype"),
    ("rewards_int", "rewards of int32", _set("rewards", lambda: wire.arr(np.ones(8, np.int32))), "dtype"),
    ("zero_steps", "a chunk of zero steps", lambda: {**wire.chunk(), "actions": wire.arr(np.zeros(0, np.int64)), "rewards": wire.arr(np.zeros(0, _f32)), "obs": wire.arr(np.zeros((1, 4), _f32))}, "shape"),
    ("too_many_steps", "more steps than the campaign's chunk_steps", lambda: wire.chunk(steps=1025), "too_large"),
    ("obs_nan", "a NaN observation", _obs(np.full((9, 4), np.nan, _f32)), "not_finite"),
    ("reward_inf", "an infinite reward", _set("rewards", lambda: wire.arr(np.full(8, np.inf, _f32))), "not_finite"),
    ("action_out_of_range", "action 2 on a Discrete(2) campaign", _set("actions", lambda: wire.arr(np.full(8, 2, np.int64))), "out_of_range"),
    ("mask_all_false", "a mask row that allows no action", _set("masks", lambda: wire.arr(np.zeros((9, 2), bool))), "masked"),
    ("logp_positive", "a log-probability above 0", _set("logp", lambda: wire.arr(np.full(8, 0.5, _f32))), "out_of_range"),
    ("episode_not_last", "an 'episode' summary on a chunk that does not end its episode", lambda: {**wire.chunk(), "episode": {"return": 1.0, "length": 8}}, "schema"),
    ("done_without_episode", "terminated without an 'episode' summary", _set("episode", None), "schema"),
    ("episode_length_short", "episode.length shorter than the chunk", _set("episode.length", 3), "schema"),
    ("dtype_f2", "rewards of float16 ('<f2' is not an allowed dtype)", _set("rewards", {"dtype": "<f2", "shape": [8], "data": b"\0" * 16}), "dtype"),
    ("obs_int", "observations of int32 on a float32 campaign", _obs(np.zeros((9, 4), np.int32)), "dtype"),
    ("masks_wrong_shape", "masks of shape [9, 3] on Discrete(2)", _set("masks", lambda: wire.arr(np.ones((9, 3), bool))), "shape"),
    ("logp_float64", "log-probabilities of float64", _set("logp", lambda: wire.arr(np.full(8, -0.5, np.float64))), "dtype"),
    ("return_nan", "episode.return NaN", _set("episode.return", float("nan")), "not_finite"),
]


def _register(name, doc, make, want, quick=False):
    REGISTRY.add("malformed", name, f"{doc}: refused '{want}', nothing stored",
                 lambda world: one_frame(world, make(), want=want), quick=quick)


for i, (name, doc, make, want) in enumerate(VARIANTS):
    _register(name, doc, make, want, quick=i == 0)

REGISTRY.add("malformed", "chunk_before_hello", "a chunk as the first message: closed 4400, nothing stored",
             lambda world: one_frame(world, wire.chunk(), hello=False, want="schema"))
