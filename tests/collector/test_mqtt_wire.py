"""The collector's MQTT packets: what it sends is MQTT as the specifications spell it, and what a
broker sends is cut into packets the same way however the stream is split into reads. A hostile
broker (or anything posing as one) gets ProtocolError and nothing else, and the reader's buffer
stays bounded whatever it is fed."""
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch_collector import mqtt_wire
from routerwatch_collector.mqtt_wire import (MAX_REMAINING, Connack, Disconnect, Message,
                                             ProtocolError, Reader, Suback)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def publish(topic, payload, qos=1, packet_id=7, retain=False, dup=False, v5=False,
            properties=b""):
    """A PUBLISH as a broker sends it, built here byte by byte from the specification."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", packet_id)
    if v5:
        body += mqtt_wire.encode_varint(len(properties)) + properties
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return bytes((first,)) + mqtt_wire.encode_varint(len(body + payload)) + body + payload


def messages(packets):
    return [(p.topic, p.payload, p.qos, p.packet_id, p.retain, p.dup) for p in packets
            if isinstance(p, Message)]


def feed_in_pieces(reader, data, cuts):
    out = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out.extend(reader.feed(data[start:cut]))
        start = cut
    return out


# ---------------------------------------------------------------------------- what we send

def test_connect_3_1_1_with_user_password_and_a_persistent_session():
    packet = mqtt_wire.connect_packet("collector-1", 60, clean=False, username="u",
                                      password="p")
    assert packet == (b"\x10\x1d" + b"\x00\x04MQTT" + b"\x04" + b"\xc0" + b"\x00\x3c"
                      + b"\x00\x0bcollector-1" + b"\x00\x01u" + b"\x00\x01p")


def test_connect_5_carries_session_expiry_and_receive_maximum():
    packet = mqtt_wire.connect_packet("c", 30, protocol="5", session_expiry=3600,
                                      receive_maximum=1000)
    assert packet == (b"\x10\x16" + b"\x00\x04MQTT" + b"\x05" + b"\x00" + b"\x00\x1e"
                      + b"\x08" + b"\x11\x00\x00\x0e\x10" + b"\x21\x03\xe8" + b"\x00\x01c")


def test_subscribe_lists_each_filter_with_its_qos():
    assert mqtt_wire.subscribe_packet(1, [("a/+", 1), ("b", 0)]) == (
        b"\x82\x0c\x00\x01" + b"\x00\x03a/+\x01" + b"\x00\x01b\x00")
    assert mqtt_wire.subscribe_packet(1, [("a", 1)], "5") == b"\x82\x07\x00\x01\x00\x00\x01a\x01"


def test_the_acknowledgements_of_a_batch_are_one_buffer_in_order():
    assert mqtt_wire.puback_packets([1, 258, 65535]) == (
        b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff")


def test_varint_matches_the_specification_table():
    for value, encoded in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                           (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"),
                           (MAX_REMAINING, b"\xff\xff\xff\x7f")):
        assert mqtt_wire.encode_varint(value) == encoded
    with pytest.raises(ValueError):
        mqtt_wire.encode_varint(MAX_REMAINING + 1)


def test_our_own_publish_reads_back():
    reader = Reader()
    out = reader.feed(mqtt_wire.publish_packet("probe/c", "12.5"))
    assert messages(out) == [(b"probe/c", b"12.5", 0, None, False, False)]
    reader5 = Reader("5")
    assert messages(reader5.feed(mqtt_wire.publish_packet("p", b"x", protocol="5"))) == [
        (b"p", b"x", 0, None, False, False)]


# ---------------------------------------------------------------------------- what we read

def test_a_burst_of_publishes_in_one_read_and_split_at_every_byte_gives_the_same_messages():
    stream = b"".join(publish(b"routerwatch/rw-1/anomaly", b'{"n": %d}' % n, packet_id=n + 1,
                              dup=n == 2) for n in range(5))
    whole = messages(Reader().feed(stream))
    assert [m[3] for m in whole] == [1, 2, 3, 4, 5]
    assert whole[2][5] is True
    for cut in range(1, len(stream)):
        assert messages(feed_in_pieces(Reader(), stream, [cut])) == whole
    byte_by_byte = Reader()
    assert messages(feed_in_pieces(byte_by_byte, stream, range(len(stream)))) == whole


def test_control_packets_are_recognised():
    reader = Reader()
    out = reader.feed(b"\x20\x02\x01\x00" + b"\x90\x04\x00\x01\x01\x80" + b"\xd0\x00")
    assert isinstance(out[0], Connack) and out[0].session_present and out[0].code == 0
    assert isinstance(out[1], Suback) and out[1].packet_id == 1 and out[1].codes == b"\x01\x80"
    assert out[2] == mqtt_wire.PINGRESP


def test_mqtt_5_properties_are_stepped_over():
    properties = (b"\x01\x01" + b"\x02\x00\x00\x00\x10" + b"\x03\x00\x04text"
                  + b"\x26\x00\x01k\x00\x01v" + b"\x0b\x05")
    out = Reader("5").feed(publish(b"t", b"payload", v5=True, properties=properties)
                           + b"\x20\x06\x00\x00\x03\x21\x00\x0a" + b"\xe0\x01\x8e")
    assert messages(out) == [(b"t", b"payload", 1, 7, False, False)]
    assert isinstance(out[1], Connack) and out[1].code == 0
    assert isinstance(out[2], Disconnect) and out[2].code == 0x8E


@pytest.mark.parametrize("data, what", [
    (b"\x30\xff\xff\xff\xff\x01", "varint longer than 4 bytes"),
    (b"\x20\x03\x00\x00\x00", "CONNACK of 3 bytes on 3.1.1"),
    (b"\x20\x02\x02\x00", "CONNACK reserved flags"),
    (b"\x31\x05\x00\x09abc", "topic longer than the packet"),
    (b"\x32\x04\x00\x01a\x00", "QoS 1 without room for the packet id"),
    (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
    (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
    (b"\x10\x00", "a CONNECT from the broker"),
    (b"\x62\x02\x00\x01", "PUBREL: QoS 2 was never asked for"),
    (b"\xd0\x01\x00", "PINGRESP with a body"),
    (b"\x21\x02\x00\x00", "CONNACK with fixed-header flags"),
    (b"\x90\x02\x00\x01", "SUBACK without codes"),
    (b"\x90" + mqtt_wire.encode_varint(1 << 20) + b"\x00", "a control packet of 1 MiB"),
])
def test_malformed_packets_are_refused(data, what):
    with pytest.raises(ProtocolError):
        Reader().feed(data)


@pytest.mark.parametrize("properties", [
    b"\x05\x01",              # an identifier MQTT 5 does not define
    b"\x03\x00\x09ab",        # a string longer than its list
    b"\x0b\xff\xff\xff\xff",  # a varint property of 5 bytes
])
def test_malformed_mqtt_5_properties_are_refused(properties):
    with pytest.raises(ProtocolError):
        Reader("5").feed(publish(b"t", b"x", v5=True, properties=properties))


def test_an_oversized_publish_is_skipped_as_it_streams_and_reported_by_its_size():
    reader = Reader(max_publish=1024)
    big = publish(b"routerwatch/rw-1/anomaly", b"A" * 50000, packet_id=9)
    after = publish(b"routerwatch/rw-1/anomaly", b"{}", packet_id=10)
    out = []
    for start in range(0, len(big), 1000):
        out.extend(reader.feed(big[start:start + 1000]))
        assert len(reader._buffer) <= 1024 + 8
    out.extend(reader.feed(after))
    assert [(m.topic, m.payload, m.packet_id, m.size) for m in out] == [
        (b"routerwatch/rw-1/anomaly", None, 9, 50000),
        (b"routerwatch/rw-1/anomaly", b"{}", 10, 2)]
    # the whole oversized packet inside one read is reported the same way
    out = Reader(max_publish=1024).feed(big + after)
    assert [(m.payload, m.packet_id) for m in out] == [(None, 9), (b"{}", 10)]


# ---------------------------------------------------------------------------- fuzzing

packet_strategy = st.one_of(
    st.builds(lambda t, p, q, i, r, d: publish(t, p, q, i, r, d),
              st.binary(min_size=1, max_size=40), st.binary(max_size=300),
              st.integers(0, 1), st.integers(1, 65535), st.booleans(), st.booleans()),
    st.sampled_from([b"\x20\x02\x00\x00", b"\x20\x02\x01\x05", b"\xd0\x00",
                     b"\x90\x03\x00\x01\x01", b"\xb0\x02\x00\x01"]),
)


@FUZZ
@given(st.lists(packet_strategy, max_size=20), st.lists(st.integers(0, 8000), max_size=10))
def test_valid_streams_parse_the_same_however_they_are_split(packets, cuts):
    stream = b"".join(packets)
    whole = Reader().feed(stream)
    assert len(whole) == len(packets)
    split = feed_in_pieces(Reader(), stream, [c for c in cuts if c < len(stream)])
    assert messages(split) == messages(whole)
    assert [type(p) for p in split] == [type(p) for p in whole]


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8),
       st.sampled_from(["3.1.1", "5"]))
def test_any_bytes_give_packets_or_protocol_error_and_a_bounded_buffer(data, cuts, protocol):
    reader = Reader(protocol, max_packet=256, max_publish=512)
    try:
        out = feed_in_pieces(reader, data, [c for c in cuts if c < len(data)])
    except ProtocolError:
        return
    for packet in out:
        assert isinstance(packet, (Message, Connack, Suback, Disconnect, int))
        if isinstance(packet, Message):
            assert packet.qos in (0, 1)
            assert (packet.packet_id is None) == (packet.qos == 0)
            assert packet.payload is None or len(packet.payload) <= 512
    assert len(reader._buffer) <= 512 + 8


@FUZZ
@given(st.lists(packet_strategy, min_size=1, max_size=5), st.integers(0, 255),
       st.integers(0, 200))
def test_a_corrupted_byte_in_a_valid_stream_never_raises_anything_but_protocol_error(
        packets, value, where):
    stream = bytearray(b"".join(packets))
    stream[where % len(stream)] = value
    try:
        Reader().feed(bytes(stream))
    except ProtocolError:
        pass
