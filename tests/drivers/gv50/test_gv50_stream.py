"""The GV50 stream codec on byte streams: framing, noise, limits, binary input, identity."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from gv50_vectors import FRAMES, X3, X4, X6_READS
from waygps.actions import Close, Identified, Rejected, Send, Store
from waygps.actions import Flagged
from waygps.drivers.gv50.codec import Gv50StreamCodec
from waygps.drivers.gv50.framing import FRAME, NOISE, OVERSIZE, TEXT, UNTERMINATED, Splitter
from waygps.events import Heartbeat, Position

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=timezone.utc)
HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
S1, S7, S8 = FRAMES["S1"], FRAMES["S7"], FRAMES["S8"]


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def positions(actions: list[Any]) -> list[Position]:
    return [e for a in actions if isinstance(a, Store) for e in a.events if isinstance(e, Position)]


def test_several_frames_in_one_read_each_acknowledged_in_order() -> None:
    codec = Gv50StreamCodec()
    s1_again = S1.replace(b"132B$", b"132C$")
    actions = codec.receive(S1 + s1_again + HBD.replace(b"135790246811220", b"862894020180553"), NOW)
    assert kinds(actions) == ["Identified", "Store", "Store", "Send", "Store"]
    assert [a.ack for a in actions if isinstance(a, Store)] == [b"+SACK:132B$", b"+SACK:132C$", b""]
    assert actions[3] == Send(b"+SACK:GTHBD,1A0401,11F0$")


def test_X6_frame_split_over_two_reads() -> None:
    codec = Gv50StreamCodec()
    assert codec.receive(X6_READS[0], NOW) == []
    assert codec.splitter.buffered == len(X6_READS[0])
    actions = [a for a in codec.receive(X6_READS[1], NOW) if not isinstance(a, Flagged)]
    assert actions[:2] == [Identified("135790246811220"), Send(b"+SACK:GTHBD,1A0401,11F0$")]
    # The second frame comes from another unit: rejected on this connection (a shared SIM, a spoof).
    assert isinstance(actions[-1], Rejected) and actions[-1].reason == "imei_mismatch"
    same = X6_READS[1].replace(b"866425030235982", b"135790246811220")
    codec = Gv50StreamCodec()
    codec.receive(X6_READS[0], NOW)
    actions = codec.receive(same, NOW)
    assert [a.data for a in actions if isinstance(a, Send)] == [b"+SACK:GTHBD,1A0401,11F0$"]
    assert [a.ack for a in actions if isinstance(a, Store)] == [b"", b"+SACK:0BD5$"]


def test_one_frame_byte_by_byte() -> None:
    codec = Gv50StreamCodec()
    actions: list[Any] = []
    for i in range(len(S1)):
        actions += codec.receive(S1[i:i + 1], NOW)
    assert kinds(actions) == ["Identified", "Store"]
    assert positions(actions)[0].latitude == -17.720434


def test_X4_leading_crlf_and_http_noise() -> None:
    codec = Gv50StreamCodec()
    actions = codec.receive(X4, NOW)
    assert actions[0] == Identified("135790246811220")
    assert Send(b"+SACK:GTHBD,1A0401,11F0$") in actions
    noise = [a for a in actions if isinstance(a, Rejected)]
    assert [a.reason for a in noise] == ["noise"] and noise[0].excerpt.startswith(b"GET / HTTP/1.1")
    assert not any(isinstance(a, Close) for a in actions)
    assert codec.splitter.buffered == 0


def test_crlf_between_frames_is_not_logged() -> None:
    codec = Gv50StreamCodec()
    actions = codec.receive(S1 + b"\r\n" + S8.replace(b"869606020188383", b"862894020180553") + b"\r\n", NOW)
    assert kinds(actions) == ["Identified", "Store", "Store"]


def test_corpus_lines_without_dollar_end_at_line_feed_or_nul() -> None:
    codec = Gv50StreamCodec()
    s3 = FRAMES["S3"]  # no "$" in the corpus
    actions = codec.receive(s3 + b"\n" + s3.replace(b"4D83", b"4D84") + b"\x00", NOW)
    assert [a.ack for a in actions if isinstance(a, Store)] == [b"+SACK:4D83$", b"+SACK:4D84$"]


def test_X3_binary_hex_format_closes_the_connection() -> None:
    codec = Gv50StreamCodec()
    actions = codec.receive(X3, NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reason == "hex_mode"
    assert codec.receive(S1, NOW) == []  # nothing more is read from it


def test_binary_detected_after_good_frames_too() -> None:
    codec = Gv50StreamCodec()
    actions = codec.receive(S1 + b"+ACK\x01\x02\x03", NOW)
    assert kinds(actions) == ["Identified", "Store", "Rejected", "Close"]


def test_frame_that_lost_its_terminator_is_cut_at_the_next_header() -> None:
    codec = Gv50StreamCodec()
    truncated = S1[:60]
    actions = codec.receive(truncated + S1, NOW)
    assert kinds(actions) == ["Rejected", "Identified", "Store"]
    assert actions[0].reason == "unterminated" and actions[0].excerpt == truncated


def test_oversize_frame_is_dropped_and_the_stream_recovers() -> None:
    codec = Gv50StreamCodec(max_frame=300)
    assert kinds(codec.receive(S1, NOW)) == ["Identified", "Store"]
    long = b"+RESP:GTFRI," + b"1," * 400
    actions = codec.receive(long[:250], NOW)
    assert actions == [] and codec.splitter.buffered == 250
    actions = codec.receive(long[250:], NOW)
    assert kinds(actions) == ["Rejected"] and actions[0].reason == "frame_too_long"
    for _ in range(3):  # more of the same frame: dropped as it comes, the connection stays
        assert codec.receive(long, NOW) == [] and codec.splitter.buffered == 0
    actions = codec.receive(b"9,9,9$" + S1.replace(b"132B", b"132C"), NOW)  # the long frame's rest is skipped
    assert kinds(actions) == ["Store"] and actions[0].ack == b"+SACK:132C$"


def test_oversize_frame_in_one_read_with_its_delimiter() -> None:
    codec = Gv50StreamCodec(max_frame=300)
    actions = codec.receive(S1 + b"+RESP:GTFRI," + b"1," * 200 + b"$" + S1.replace(b"132B", b"132C"), NOW)
    assert kinds(actions) == ["Identified", "Store", "Rejected", "Store"] and actions[2].reason == "frame_too_long"


def test_garbage_up_to_the_frame_limit_closes_the_connection() -> None:
    codec = Gv50StreamCodec(max_frame=1024)
    actions: list[Any] = []
    for _ in range(100):
        actions += codec.receive(b"\x16\x03\x01 not a tracker at all ", NOW)
        if any(isinstance(a, Close) for a in actions):
            break
    assert isinstance(actions[-1], Close) and len(actions) == 1024 // 25 + 2  # closed once 1024 bytes came
    assert all(isinstance(a, Rejected) and a.reason == "noise" for a in actions[:-1])
    assert codec.receive(S1, NOW) == []


def test_garbage_counter_restarts_at_every_good_frame() -> None:
    codec = Gv50StreamCodec(max_frame=1024)
    for _ in range(10):
        actions = codec.receive(b"junk " * 60 + S1, NOW)
        assert not any(isinstance(a, Close) for a in actions)


# X1 without its coordinates: no count and no position, so nothing in it is kept.
X1_NO_FIX = FRAMES["X1"].replace(b"-90.366478,38.735379", b",")


def test_malformed_frames_do_not_close_the_connection() -> None:
    codec = Gv50StreamCodec(max_frame=1024)
    for _ in range(20):
        actions = codec.receive(X1_NO_FIX, NOW)
        assert kinds(actions) == ["Rejected"]


def test_unidentified_connection_sending_only_overlong_frames_is_closed() -> None:
    codec = Gv50StreamCodec(max_frame=256)
    actions = codec.receive(b"+" + b"x" * 300, NOW)
    assert kinds(actions) == ["Rejected", "Close"] and actions[0].reason == "frame_too_long"


def test_unknown_header_counts_as_garbage() -> None:
    codec = Gv50StreamCodec(max_frame=256)
    actions = codec.receive(b"+CMGS: " + b"x" * 300 + b"$", NOW)
    assert kinds(actions) == ["Rejected", "Close"]


def test_identity_is_taken_from_the_first_decodable_frame() -> None:
    codec = Gv50StreamCodec()
    actions = codec.receive(X1_NO_FIX + S1 + S7, NOW)
    assert kinds(actions) == ["Rejected", "Identified", "Store", "Rejected"]
    assert actions[1] == Identified("862894020180553") and actions[3].reason == "imei_mismatch"
    assert codec.imei == "862894020180553"


def test_malformed_unique_id_is_rejected() -> None:
    for bad in (b"8628940201805", b"8628940201805531", b"86289402018055X", b"A10000499AEF9", b"G10000499AEF9B"):
        actions = Gv50StreamCodec().receive(S1.replace(b"862894020180553", bad), NOW)
        assert kinds(actions) == ["Rejected"] and actions[0].reason == "bad_unique_id", bad


def test_heartbeat_is_answered_even_with_acknowledgements_off() -> None:
    codec = Gv50StreamCodec(ack=False)
    actions = codec.receive(HBD + S1.replace(b"862894020180553", b"135790246811220"), NOW)
    assert Send(b"+SACK:GTHBD,1A0401,11F0$") in actions
    assert [a.ack for a in actions if isinstance(a, Store)] == [b"", b""]


def test_heartbeat_with_empty_version_field_kept_verbatim() -> None:
    actions = Gv50StreamCodec().receive(b"+ACK:GTHBD,1a0401,135790246811220,,20100214093254,11f0$", NOW)
    assert Send(b"+SACK:GTHBD,1a0401,11f0$") in actions


def test_buffered_resend_has_the_key_of_the_original() -> None:
    live = positions(Gv50StreamCodec().receive(S1, NOW))[0]
    later = datetime(2026, 6, 1, tzinfo=timezone.utc)
    resent = positions(Gv50StreamCodec().receive(S1.replace(b"+RESP:", b"+BUFF:"), later))[0]
    assert resent.buffered and not live.buffered
    assert resent.document_id == live.document_id


def test_report_without_position_is_stamped_with_server_time_never_1970() -> None:
    (position,) = positions(Gv50StreamCodec().receive(FRAMES["S23"] , NOW))
    assert position.device_time == NOW and position.attributes["time_source"] == "server"
    assert position.latitude is None and position.valid is False


def test_unknown_report_type_is_acknowledged_without_a_position() -> None:
    frame = b"+RESP:GTXYZ,060228,862894020180553,,1,2,3,20160309073554,0042$"
    actions = Gv50StreamCodec().receive(frame, NOW)
    assert kinds(actions) == ["Identified", "Flagged", "Store"]
    assert actions[1].reason == "unknown_report_type"
    assert actions[2].ack == b"+SACK:0042$" and isinstance(actions[2].events[0], Heartbeat)


def test_layout_that_does_not_fit_is_rejected() -> None:
    frame = b"+RESP:GTFRI,060228,862894020180553,,,10,1,1,20.0,147,20160309073554,0042$"
    actions = Gv50StreamCodec().receive(frame, NOW)
    assert kinds(actions) == ["Identified", "Rejected"] and actions[1].reason == "layout"


def test_splitter_pieces() -> None:
    splitter = Splitter(64)
    pieces = splitter.feed(b"  +A,1$zz+RESP:x" + b"y" * 80)
    assert pieces[:3] == [(NOISE, b"", 2), (FRAME, b"+A,1", 5), (NOISE, b"zz", 2)]
    assert pieces[3][0] == OVERSIZE and splitter.buffered == 0
    assert splitter.feed(b"tail$+ACK:GTX,1$")[-1] == (TEXT, "+ACK:GTX,1", 11)
    assert splitter.feed(b"+ACK:GTX,2$+ACK:GTX,\xff$") == [(TEXT, "+ACK:GTX,2", 11), (TEXT, "+ACK:GTX,\ufffd", 11)]
    assert splitter.feed(b"+ACK:GTX,3\r\n") == [(FRAME, b"+ACK:GTX,3", 12)]  # line ends: the byte path
    pieces = Splitter(64).feed(b"+RESP:a,+BUFF:b$")
    assert [p[0] for p in pieces] == [UNTERMINATED, FRAME]


def test_end_of_a_capture_ends_its_last_frame() -> None:
    codec = Gv50StreamCodec()
    assert codec.receive(FRAMES["S3"], NOW) == []  # a corpus line without "$": waits on a connection
    actions = codec.finish(NOW)  # `waygps decode` says the capture ended
    assert kinds(actions) == ["Identified", "Store"] and actions[1].ack == b"+SACK:4D83$"
    assert codec.finish(NOW) == []
    truncated = Gv50StreamCodec()
    truncated.receive(S1[:90], NOW)
    actions = truncated.finish(NOW)
    assert kinds(actions) == ["Rejected"] and actions[0].reason == "bad_count"
