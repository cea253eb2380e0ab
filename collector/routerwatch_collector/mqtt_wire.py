"""MQTT 3.1.1 and 5 packets as the collector needs them: encoded to bytes, and parsed from the
bytes a broker sends, with no I/O here (subscriber.py owns the socket).

Why the collector speaks MQTT itself: a backlog arrives as a stream of small PUBLISH packets, and
a general client library pays a read, an object and a callback per packet, then a write per
acknowledgement. Here one large read is cut into every complete packet it holds, and the
acknowledgements of a committed batch go out in one write.

The broker is not trusted more than a router: every length is checked against what is left of
the packet, a remaining length above `max_packet` is refused (except a PUBLISH, whose oversized
payload is skipped as it streams past and reported by its size, so one huge message neither
grows memory nor blocks the session), and anything malformed raises ProtocolError, after which
the connection is dropped and made again.
"""
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# the most a remaining length can say in four varint bytes (MQTT 3.1.1 §2.2.3, MQTT 5 §1.5.5)
MAX_REMAINING = 268435455
# a packet other than PUBLISH bigger than this is refused: a CONNACK, SUBACK or DISCONNECT with
# its properties is a few hundred bytes; only a broker out to exhaust memory sends more
MAX_CONTROL_PACKET = 64 * 1024

PINGREQ_PACKET = b"\xc0\x00"

CONNACK_TEXT = {
    # MQTT 3.1.1
    1: "unacceptable protocol version", 2: "client identifier rejected",
    3: "server unavailable", 4: "bad user name or password", 5: "not authorised",
    # MQTT 5
    128: "unspecified error", 129: "malformed packet", 130: "protocol error",
    131: "implementation specific error", 132: "unsupported protocol version",
    133: "client identifier not valid", 134: "bad user name or password",
    135: "not authorised", 136: "server unavailable", 137: "server busy", 138: "banned",
    140: "bad authentication method", 144: "topic name invalid", 149: "packet too large",
    151: "quota exceeded", 153: "payload format invalid", 154: "retain not supported",
    155: "QoS not supported", 156: "use another server", 157: "server moved",
    159: "connection rate exceeded",
}

# MQTT 5 property identifiers the collector sends, and the size of every fixed-size property it
# may have to step over (the rest are a UTF-8 string, a string pair, binary data or a varint)
PROP_SESSION_EXPIRY = 0x11
PROP_RECEIVE_MAXIMUM = 0x21
PROP_MAXIMUM_PACKET_SIZE = 0x27
_FIXED_PROPERTY_SIZE = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1,
                        0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1,
                        0x29: 1, 0x2A: 1}
_STRING_PROPERTIES = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY_PROPERTIES = {0x09, 0x16}
_VARINT_PROPERTIES = {0x0B}
_PAIR_PROPERTIES = {0x26}


class ProtocolError(ValueError):
    """The peer sent something that is not MQTT as agreed: the connection must be dropped."""


class _Truncated(ProtocolError):
    """A varint cut off by the end of the buffer: in a stream, the rest is in the next read."""


# ---------------------------------------------------------------------------- encoding

def encode_varint(value):
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError("remaining length %d out of range" % value)
    out = bytearray()
    while True:
        value, digit = value >> 7, value & 0x7F
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def encode_string(text):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65535 bytes")
    return struct.pack("!H", len(data)) + data


def _packet(first_byte, body):
    return bytes((first_byte,)) + encode_varint(len(body)) + body


def connect_packet(client_id, keepalive, clean=False, username=None, password=None,
                   protocol="3.1.1", session_expiry=None, receive_maximum=None):
    """CONNECT. MQTT 5 gets the session expiry and receive maximum as properties."""
    if not 0 <= keepalive <= 0xFFFF:
        raise ValueError("keepalive must be 0-65535 s")
    level = 5 if protocol == "5" else 4
    flags = 0x02 if clean else 0
    if username is not None:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    body = encode_string("MQTT") + bytes((level, flags)) + struct.pack("!H", keepalive)
    if level == 5:
        props = b""
        if session_expiry is not None:
            props += bytes((PROP_SESSION_EXPIRY,)) + struct.pack("!I", session_expiry)
        if receive_maximum is not None:
            props += bytes((PROP_RECEIVE_MAXIMUM,)) + struct.pack("!H", receive_maximum)
        body += encode_varint(len(props)) + props
    body += encode_string(client_id)
    if username is not None:
        body += encode_string(username)
        if password is not None:
            body += encode_string(password)
    return _packet(0x10, body)


def subscribe_packet(packet_id, topics, protocol="3.1.1"):
    """SUBSCRIBE to [(topic filter, max QoS)]."""
    body = struct.pack("!H", packet_id)
    if protocol == "5":
        body += b"\x00"                     # no properties
    for topic, qos in topics:
        body += encode_string(topic) + bytes((qos,))
    return _packet(0x82, body)


def publish_packet(topic, payload, qos=0, packet_id=None, retain=False, protocol="3.1.1"):
    """PUBLISH (the collector only sends its probe, at QoS 0); on MQTT 5 with an empty property
    list after the packet id."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    body = encode_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if protocol == "5":
        body += b"\x00"                     # no properties
    return _packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


_PUBACK = struct.Struct("!BBH")


def puback_packets(packet_ids):
    """The PUBACKs of many messages as one buffer, for one write. On MQTT 5 a PUBACK of
    remaining length 2 means success too, so both versions share the encoding."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, pid) for pid in packet_ids])


def disconnect_packet():
    return b"\xe0\x00"     # MQTT 5: remaining length 0 means reason 0, normal disconnection


# ---------------------------------------------------------------------------- decoding

class Connack:
    __slots__ = ("session_present", "code")

    def __init__(self, session_present, code):
        self.session_present, self.code = session_present, code


class Suback:
    __slots__ = ("packet_id", "codes")

    def __init__(self, packet_id, codes):
        self.packet_id, self.codes = packet_id, codes


class Disconnect:
    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code


class Message:
    """One PUBLISH from the broker. `payload` is None when the packet was bigger than the
    reader's limit; `size` is then how many payload bytes went past unread."""
    __slots__ = ("topic", "payload", "qos", "packet_id", "retain", "dup", "size")

    def __init__(self, topic, payload, qos, packet_id, retain, dup, size):
        self.topic, self.payload, self.qos, self.packet_id = topic, payload, qos, packet_id
        self.retain, self.dup, self.size = retain, dup, size


def skip_properties(data, start, end):
    """Where the MQTT 5 property list starting at data[start] ends; each property is walked, so
    a list that overruns the packet, or an unknown identifier, is refused."""
    length, pos = _read_varint(data, start, end)
    stop = pos + length
    if stop > end:
        raise ProtocolError("property list overruns its packet")
    while pos < stop:
        ident = data[pos]
        pos += 1
        size = _FIXED_PROPERTY_SIZE.get(ident)
        if size is not None:
            pos += size
        elif ident in _STRING_PROPERTIES or ident in _BINARY_PROPERTIES:
            if pos + 2 > stop:
                raise ProtocolError("property overruns its list")
            pos += 2 + ((data[pos] << 8) | data[pos + 1])
        elif ident in _PAIR_PROPERTIES:
            for _ in range(2):
                if pos + 2 > stop:
                    raise ProtocolError("property overruns its list")
                pos += 2 + ((data[pos] << 8) | data[pos + 1])
        elif ident in _VARINT_PROPERTIES:
            _, pos = _read_varint(data, pos, stop)
        else:
            raise ProtocolError("unknown property 0x%02x" % ident)
        if pos > stop:
            raise ProtocolError("property overruns its list")
    return stop


def _read_varint(data, pos, end):
    """(value, position after it) of the varint at data[pos]; at most 4 bytes."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise _Truncated("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ProtocolError("variable byte integer longer than 4 bytes")


class Reader:
    """Cuts the bytes a broker sends into packets. feed() takes what a read returned and gives
    back the complete packets (Message, Connack, Suback, Disconnect, or the type number of a
    PINGRESP / UNSUBACK); the tail of an incomplete packet waits for the next read. Memory:
    the buffer never holds more than one packet of at most `max_packet` bytes beyond a read;
    a PUBLISH above the limit keeps only its topic and id."""

    def __init__(self, protocol="3.1.1", max_packet=MAX_CONTROL_PACKET + 16,
                 max_publish=70 * 1024):
        self.v5 = protocol == "5"
        self.max_control = max_packet
        self.max_publish = max_publish
        self._buffer = b""
        self._skip = 0            # payload bytes of an oversized PUBLISH still to throw away
        self._skipped = None      # that PUBLISH's Message, returned when the skipping is done

    def feed(self, data):
        if self._skip:
            if len(data) < self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip:]
            self._skip = 0
            out = [self._skipped]
            self._skipped = None
        else:
            out = []
        buffer = self._buffer + data if self._buffer else data
        end = len(buffer)
        pos = 0
        v5 = self.v5
        append = out.append
        while pos + 2 <= end:
            first = buffer[pos]
            # the remaining length, inline: this runs once per message
            byte = buffer[pos + 1]
            if byte < 0x80:
                length, body = byte, pos + 2
            else:
                try:
                    length, body = _read_varint(buffer, pos + 1, end)
                except _Truncated:
                    break                   # the length continues in the next read
            stop = body + length
            kind = first >> 4
            if kind == PUBLISH:
                if length > self.max_publish:
                    message, taken = self._oversized(buffer, first, body, length, end)
                    if message is None:
                        break               # the header is not all here yet
                    if stop <= end:
                        append(message)
                        pos = stop
                        continue
                    self._skip = stop - end
                    self._skipped = message
                    pos = end
                    break
                if stop > end:
                    break
                qos = (first >> 1) & 3
                if length < 2:
                    raise ProtocolError("PUBLISH shorter than its topic length")
                topic_end = body + 2 + ((buffer[body] << 8) | buffer[body + 1])
                if qos:
                    if qos == 3:
                        raise ProtocolError("PUBLISH with QoS 3")
                    if topic_end + 2 > stop:
                        raise ProtocolError("PUBLISH shorter than its topic and packet id")
                    packet_id = (buffer[topic_end] << 8) | buffer[topic_end + 1]
                    if not packet_id:
                        raise ProtocolError("PUBLISH at QoS %d with packet id 0" % qos)
                    start = topic_end + 2
                else:
                    if topic_end > stop:
                        raise ProtocolError("PUBLISH shorter than its topic")
                    packet_id = None
                    start = topic_end
                if v5:
                    start = skip_properties(buffer, start, stop)
                append(Message(buffer[body + 2:topic_end], buffer[start:stop], qos, packet_id,
                               bool(first & 1), bool(first & 8), stop - start))
                pos = stop
                continue
            if first & 0x0F:
                raise ProtocolError("packet of type %d with reserved flags set" % kind)
            if length > self.max_control:
                raise ProtocolError("packet of type %d with remaining length %d, above the "
                                    "limit of %d" % (kind, length, self.max_control))
            if stop > end:
                break
            append(self._control(kind, first & 0x0F, buffer, body, stop))
            pos = stop
        tail = buffer[pos:] if pos < end else b""
        if len(tail) > max(self.max_control, self.max_publish) + 8:
            raise ProtocolError("incomplete packet above the size limit")   # unreachable
        self._buffer = tail
        return out

    def _oversized(self, buffer, first, body, length, end):
        """(Message without payload, 0), or (None, 0) while its header is still to come."""
        qos = (first >> 1) & 3
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        if body + 2 > end:
            return None, 0
        topic_length = (buffer[body] << 8) | buffer[body + 1]
        header = 2 + topic_length + (2 if qos else 0)
        if header > length:
            raise ProtocolError("PUBLISH shorter than its topic")
        if header > self.max_publish:
            raise ProtocolError("PUBLISH topic above the size limit")
        if body + header > end:
            return None, 0
        topic_end = body + 2 + topic_length
        packet_id = None
        if qos:
            packet_id = (buffer[topic_end] << 8) | buffer[topic_end + 1]
            if not packet_id:
                raise ProtocolError("PUBLISH at QoS %d with packet id 0" % qos)
        # (MQTT 5 properties of an oversized message are skipped with its payload)
        return Message(buffer[body + 2:topic_end], None, qos, packet_id, bool(first & 1),
                       bool(first & 8), length - header), 0

    def _control(self, kind, flags, buffer, body, stop):
        length = stop - body
        if kind == CONNACK:
            if length < 2 or (not self.v5 and length != 2):
                raise ProtocolError("CONNACK of %d bytes" % length)
            if buffer[body] & 0xFE:
                raise ProtocolError("CONNACK with reserved flags set")
            if self.v5 and length > 2:
                if skip_properties(buffer, body + 2, stop) != stop:
                    raise ProtocolError("CONNACK longer than its properties")
            return Connack(bool(buffer[body] & 1), buffer[body + 1])
        if kind == SUBACK:
            if length < 3:
                raise ProtocolError("SUBACK of %d bytes" % length)
            start = body + 2
            if self.v5:
                start = skip_properties(buffer, start, stop)
                if start >= stop:
                    raise ProtocolError("SUBACK without reason codes")
            return Suback((buffer[body] << 8) | buffer[body + 1], bytes(buffer[start:stop]))
        if kind == PINGRESP:
            if length:
                raise ProtocolError("PINGRESP with a body")
            return PINGRESP
        if kind == UNSUBACK:
            return UNSUBACK
        if kind == DISCONNECT and self.v5:
            code = buffer[body] if length else 0
            if length > 1 and skip_properties(buffer, body + 1, stop) != stop:
                raise ProtocolError("DISCONNECT longer than its properties")
            return Disconnect(code)
        # a broker never sends CONNECT, SUBSCRIBE, PINGREQ; QoS 2 flows were never asked for;
        # an AUTH exchange was never started; PUBACK answers a QoS 1 publish we never make
        raise ProtocolError("unexpected packet of type %d" % kind)
