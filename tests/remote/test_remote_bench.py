"""The remote benchmark runs both ways against a server and reports comparable numbers (checked on the fake)."""

from __future__ import annotations

from remote_fakes import stream

from mlxchat.bench.remote_bench import format_remote_table, run_remote_bench


def test_the_benchmark_times_direct_calls_and_the_engine_on_the_same_server(fake_server):
    fake_server.chat = stream("Once", " upon", " a", " time", finish="length", usage=(12, 4), delay_s=0.005)
    result = run_remote_bench(fake_server.url, "model-b", runs=2, max_tokens=4)
    assert result["model"] == "/srv/models/model-b" and len(result["direct"]) == len(result["engine"]) == 2
    assert set(result["tokens"]) == {4}
    numbers = result["numbers"]
    assert numbers["direct_ttft_s"] > 0 and numbers["engine_ttft_seen_s"] >= numbers["engine_ttft_s"] > 0
    assert numbers["direct_decode_tps"] > 0 and numbers["engine_decode_tps"] > 0
    bodies = [request.body for request in fake_server.chats]
    assert all(body == bodies[0] for body in bodies), "both ways must send the same request"
    table = format_remote_table(result)
    assert "TTFT (as the consumer sees it)" in table and "client CPU per request" in table
