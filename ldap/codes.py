"""LDAP result codes (RFC 4511, section 4.1.9 and appendix A) and OIDs the server knows."""
from __future__ import annotations

from enum import IntEnum


class ResultCode(IntEnum):
    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    COMPARE_TRUE = 6
    AUTH_METHOD_NOT_SUPPORTED = 7
    ADMIN_LIMIT_EXCEEDED = 11
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    NO_SUCH_ATTRIBUTE = 16
    NO_SUCH_OBJECT = 32
    INVALID_DN_SYNTAX = 34
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53
    OTHER = 80


# RFC 4511 4.4.1: the responseName of an unsolicited Notice of Disconnection.
NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"
# RFC 3062 password modify; RFC 4532 "Who am I?"; RFC 4511 StartTLS.
PASSWORD_MODIFY = b"1.3.6.1.4.1.4203.1.11.1"
WHO_AM_I = b"1.3.6.1.4.1.4203.1.11.3"
START_TLS = b"1.3.6.1.4.1.1466.20037"
