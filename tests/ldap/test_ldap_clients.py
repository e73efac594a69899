"""Real clients against the listener started in-process on 127.0.0.1 (a free port), over
the hand-made directory: OpenLDAP's ldapsearch / ldapmodify / ldapadd / ldapdelete /
ldapmodrdn / ldappasswd / ldapwhoami, ldap3, and raw sockets for bad input."""
from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import ldap3
import pytest

from ldap.directory import DirectoryHolder
from ldap.listener import start_ldap
from ldap.settings import LdapSettings

from ldap_fixtures import CA_DN, CRL1_DN, ROOT_DN
from ldap_wire import msg, replies, search

CRL = "certificateRevocationList;binary"
ENV = {**os.environ, "LDAPNOINIT": "1"}  # ignore ~/.ldaprc and /etc/ldap/ldap.conf


@pytest.fixture
async def server(directory):
    holder = DirectoryHolder(directory)
    listener = await start_ldap(LdapSettings(listen="127.0.0.1:0"), holder)
    listener.holder = holder  # type: ignore[attr-defined]
    yield listener
    await listener.stop()


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    p = await asyncio.create_subprocess_exec(
        *args, env=ENV, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(stdin), 30)
    return p.returncode, out.decode(), err.decode()


async def ldapsearch(port: int, *args: str) -> tuple[int, str, str]:
    return await run("ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no",
                     "-H", f"ldap://127.0.0.1:{port}", *args)


def ldif_values(text: str, attr: str) -> list[bytes]:
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.lower() == attr.lower():
            out.append(base64.b64decode(value[2:]) if value.startswith(": ") else value[1:].encode())
    return out


class TestLdapsearch:
    @pytest.mark.parametrize("attr", [CRL, "certificateRevocationList", "2.5.4.39"])
    async def test_crl_bytes(self, server, pki, attr):
        rc, out, err = await ldapsearch(server.port, "-b", CRL1_DN, "-s", "base",
                                        "(objectClass=*)", attr)
        assert rc == 0, err
        assert ldif_values(out, CRL) == [pki.crl]

    async def test_distribution_point_query(self, server, pki):
        """What clients derive from `ldap://host/<dn>?certificateRevocationList;binary?base?
        objectClass=cRLDistributionPoint` in a CRL distribution point."""
        rc, out, err = await ldapsearch(server.port, "-b", CRL1_DN, "-s", "base",
                                        "(objectClass=cRLDistributionPoint)", CRL)
        assert rc == 0, err
        assert ldif_values(out, CRL) == [pki.crl]

    async def test_subtree_by_mail(self, server, pki):
        rc, out, err = await ldapsearch(server.port, "-b", "c=HK", "(mail=sm.wong@example.hk)",
                                        "userCertificate;binary", "mail")
        assert rc == 0, err
        assert f"dn: uid=1001,{CA_DN}" in out
        assert ldif_values(out, "userCertificate;binary") == [pki.users["sm.wong@example.hk"]]

    @pytest.mark.parametrize("flt", ["(userCertificate=0*)", "(certificateRevocationList>=\\00)",
                                     "(2.5.4.39;binary<=\\ff)", "(!(userCertificate;binary=*0*))"])
    async def test_no_ordering_or_substrings_on_der(self, server, flt):
        # Undefined (RFC 4523 has no such rules for these types): a successful, empty search.
        rc, out, err = await ldapsearch(server.port, "-b", "c=HK", flt, "1.1")
        assert rc == 0, err
        assert "dn: " not in out, out

    async def test_size_limit(self, server):
        rc, out, err = await ldapsearch(server.port, "-b", "c=HK", "-z", "2", "1.1")
        assert rc == 4 and "Size limit exceeded" in err + out
        assert out.count("dn: ") == 2

    async def test_no_such_object(self, server):
        rc, out, err = await ldapsearch(server.port, "-b", f"cn=Nobody,{CA_DN}", "-s", "base")
        assert rc == 32
        assert f"Matched DN: {CA_DN}" in out + err

    async def test_root_dse(self, server):
        rc, out, err = await ldapsearch(server.port, "-b", "", "-s", "base", "+")
        assert rc == 0, err
        assert "namingContexts: c=HK" in out and "supportedLDAPVersion: 3" in out

    async def test_password_bind_refused(self, server):
        rc, out, err = await ldapsearch(server.port, "-D", "cn=admin,c=HK", "-w", "secret",
                                        "-b", "c=HK")
        assert rc == 49 and "Invalid credentials" in err

    async def test_whoami(self, server):
        rc, out, err = await run("ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{server.port}")
        assert rc == 0 and out.strip() == "anonymous"


class TestWritesRefused:
    MODIFY = (f"dn: {CRL1_DN}\nchangetype: modify\nreplace: {CRL}\n"
              f"{CRL}:: {base64.b64encode(b'forged').decode()}\n").encode()

    @pytest.mark.parametrize("tool, args, stdin", [
        ("ldapmodify", [], MODIFY),
        ("ldapadd", [], f"dn: cn=new,{CA_DN}\nobjectClass: top\ncn: new\n".encode()),
        ("ldapdelete", [CRL1_DN], None),
        ("ldapmodrdn", [CRL1_DN, "cn=renamed"], None),
        ("ldappasswd", ["-s", "x", CRL1_DN], None),
    ])
    async def test_refused_and_unchanged(self, server, pki, tool, args, stdin):
        rc, out, err = await run(tool, "-x", "-H", f"ldap://127.0.0.1:{server.port}", *args,
                                 stdin=stdin)
        # ldappasswd prints the result and exits 1; the others exit with the result code.
        assert rc == (1 if tool == "ldappasswd" else 50), (out, err)
        assert "Insufficient access (50)" in out + err
        rc, out, _ = await ldapsearch(server.port, "-b", CRL1_DN, "-s", "base", "*")
        assert rc == 0 and ldif_values(out, CRL) == [pki.crl]
        assert "cn: Hongkong Post e-Cert CA 2 - 17 CRL1" in out
        rc, out, _ = await ldapsearch(server.port, "-b", CA_DN, "-s", "one", "1.1")
        assert out.count("dn: ") == 4


class TestLdap3:
    def _connect(self, port: int) -> ldap3.Connection:
        server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.DSA)
        return ldap3.Connection(server, auto_bind=True, raise_exceptions=False)

    async def test_subtree_by_mail_and_arl(self, server, pki):
        def work():
            with self._connect(server.port) as c:
                assert c.server.info.naming_contexts == ["c=HK"]
                c.search("c=HK", "(mail=ky.lee@example.hk)", ldap3.SUBTREE,
                         attributes=["userCertificate;binary", "cn"])
                found = [(e.entry_dn, e["userCertificate;binary"].value) for e in c.entries]
                c.search(ROOT_DN, "(objectClass=pkiCA)", ldap3.BASE,
                         attributes=["authorityRevocationList;binary"])
                arl = c.entries[0]["authorityRevocationList;binary"].value
                return found, arl

        found, arl = await asyncio.to_thread(work)
        assert found == [(f"uid=1002,{CA_DN}", pki.users["ky.lee@example.hk"])]
        assert arl == pki.arl

    async def test_modify_refused(self, server, pki):
        def work():
            with self._connect(server.port) as c:
                c.modify(CRL1_DN, {CRL: [(ldap3.MODIFY_REPLACE, [b"forged"])]})
                code = c.result["result"]
                c.search(CRL1_DN, "(objectClass=*)", ldap3.BASE, attributes=[CRL])
                return code, c.entries[0][CRL].value

        code, value = await asyncio.to_thread(work)
        assert code == 50 and value == pki.crl


async def _read_notice(port: int, data: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data)
    await w.drain()
    out = await asyncio.wait_for(r.read(), 10)  # until the server closes
    w.close()
    return out


class TestRobustness:
    async def test_malformed_ber(self, server):
        out = await _read_notice(server.port, b"\x30\x05\x02\x01\x01\x63\x99garbage")
        [r] = replies(out)
        assert r.id == 0 and r.op.resultCode == 2
        rc, _, _ = await ldapsearch(server.port, "-b", CRL1_DN, "-s", "base", "1.1")
        assert rc == 0

    async def test_pdu_over_the_cap(self, directory):
        listener = await start_ldap(LdapSettings(listen="127.0.0.1:0", max_pdu=4096),
                                    DirectoryHolder(directory))
        try:
            # Announce 64 MiB and send only the header: refused at once.
            out = await _read_notice(listener.port, b"\x30\x84" + struct.pack(">I", 64 << 20))
            [r] = replies(out)
            assert r.op.resultCode == 2 and b"limit" in r.op.errorMessage
            rc, _, _ = await ldapsearch(listener.port, "-b", CRL1_DN, "-s", "base", "1.1")
            assert rc == 0
        finally:
            await listener.stop()

    async def test_connection_cap_and_idle_crowd(self, directory):
        listener = await start_ldap(LdapSettings(listen="127.0.0.1:0", max_connections=200),
                                    DirectoryHolder(directory))
        crowd = []
        try:
            for _ in range(199):
                crowd.append(await asyncio.open_connection("127.0.0.1", listener.port))
            rc, _, _ = await ldapsearch(listener.port, "-b", CRL1_DN, "-s", "base", "1.1")
            assert rc == 0  # the 200th connection is served
            crowd.append(await asyncio.open_connection("127.0.0.1", listener.port))
            out = await _read_notice(listener.port, b"")  # the 201st is told and closed
            [r] = replies(out)
            assert r.id == 0 and r.op.resultCode == 52
            _, w = crowd.pop()
            w.close()
            await w.wait_closed()
            # the cap frees up once the server has seen the close
            for _ in range(200):
                if len(listener.factory.connections) < 199:
                    break
                await asyncio.sleep(0.01)
            rc, _, err = await ldapsearch(listener.port, "-b", CRL1_DN, "-s", "base", "1.1")
            assert rc == 0, err
        finally:
            for _, w in crowd:
                w.close()
            await listener.stop()

    async def test_client_that_never_reads(self, directory, pki):
        settings = LdapSettings(listen="127.0.0.1:0", max_pending=8)
        listener = await start_ldap(settings, DirectoryHolder(directory))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", listener.port))
            request = b"".join(msg(search(CRL1_DN, 0, attrs=[CRL]), i) for i in range(1, 3001))
            sent = 0
            for _ in range(500):  # send what the kernel takes; the server stops reading
                try:
                    sent += sock.send(request[sent:])
                except BlockingIOError:
                    pass
                flooded = [p for p in listener.factory.connections if p._read_paused]
                if flooded or sent == len(request):
                    break
                await asyncio.sleep(0.01)
            [proto] = [p for p in listener.factory.connections]
            for _ in range(500):
                if proto._write_paused and proto._read_paused:
                    break
                await asyncio.sleep(0.01)
            assert proto._write_paused and proto._read_paused
            # Others are served meanwhile, with the full CRL.
            rc, out, _ = await ldapsearch(listener.port, "-b", CRL1_DN, "-s", "base", CRL)
            assert rc == 0 and ldif_values(out, CRL) == [pki.crl]
            # What the server holds for the silent client stays bounded.
            t = proto.transport
            held = len(t.dataBuffer) - t.offset + t._tempDataLen
            assert held < 256 * 1024 and len(proto._buf) <= settings.max_pdu
            assert sum(len(f.key) for f in proto._queue) < 256 * 1024
        finally:
            sock.close()
            await listener.stop()

    async def test_stop_closes_everything(self, directory):
        listener = await start_ldap(LdapSettings(listen="127.0.0.1:0"), DirectoryHolder(directory))
        r, w = await asyncio.open_connection("127.0.0.1", listener.port)
        await listener.stop()
        assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", listener.port)


SCRIPT = r'''
import asyncio, socket, sys
from ldap.directory import Directory, DirectoryHolder
from ldap.listener import install_reactor, start_ldap
from ldap.settings import LdapSettings

d = Directory.from_entries([("c=HK", {"objectClass": ["top", "country"], "c": "HK"})])

async def main():
    reactor = install_reactor(asyncio.get_running_loop())
    listener = await start_ldap(LdapSettings(listen="127.0.0.1:0"), DirectoryHolder(d))
    p = await asyncio.create_subprocess_exec(
        "ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{listener.port}", "-b", "c=HK",
        "-s", "base", "1.1", stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    await listener.stop()
    print(type(reactor).__name__, p.returncode, out.decode().strip())

asyncio.run(main())
asyncio.run(main())  # a second loop in the same process
'''


def test_global_reactor_in_an_entry_point(tmp_path):
    """install_reactor() as `pkirepo serve` calls it, in a process of its own."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=60, env=ENV, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["AsyncioSelectorReactor 0 dn: c=HK"] * 2
