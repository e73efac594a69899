"""What the demo publishes besides its PKI: a CPS in two versions (PDF, Traditional Chinese,
and an English translation of the current one), a CP (HTML) and two notices, so that every
page is full on first start.

Pure: bytes and values in memory, no I/O. The PDFs are drawn with reportlab and its built-in
CID font MSung-Light (Adobe-CNS1, Traditional Chinese): a PDF reader supplies the glyphs, so
no font file is needed here and the demo stays small and quick to make.
"""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

CPS_OID = "1.3.6.1.4.1.16030.1.8.2"
CJK_FONT = "MSung-Light"


@dataclass(frozen=True)
class DemoDocument:
    kind: str
    version: str
    lang: str
    effective: dt.date
    oid: str | None
    name: str  # a file name, for messages
    data: bytes


@dataclass(frozen=True)
class DemoNotice:
    kind: str
    titles: list[tuple[str, str]]
    bodies: list[tuple[str, str]]
    starts: dt.datetime
    ends: dt.datetime | None


def _pdf(title: str, lines: list[str], *, font: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if font == CJK_FONT:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    out = io.BytesIO()
    # invariant: no creation time or random id inside, so the same text gives the same bytes.
    c = canvas.Canvas(out, pagesize=A4, invariant=1)
    c.setTitle(title)
    width, height = A4
    c.setFont(font, 18)
    c.drawString(56, height - 72, title)
    c.setFont(font, 11)
    y = height - 110
    for line in lines:
        c.drawString(56, y, line)
        y -= 18
    c.showPage()
    c.save()
    return out.getvalue()


CPS_ZH = [
    "核證作業準則（示範）",
    "本文件為 pkirepo 示範儲存庫之核證作業準則，僅供測試用途。",
    "二.五 儲存庫：核證機關證書、證書撤銷清單及本準則之所有版本，全日經 HTTP 及 LDAP 發布。",
    "四.四.三 證書撤銷清單：每日發布三次（香港時間 09:15、14:15 及 19:00），下次更新時間不超過一日。",
    "分區清單帶有關鍵「簽發分發點」延伸；完整清單涵蓋簽發核證機關撤銷的所有證書。",
    "核證機關撤銷清單每年最少發布一次。",
    "計劃維護平均每星期不超過兩小時，並於事前公布。",
]

CPS_EN = [
    "Certification Practice Statement (demo)",
    "This is the practice statement of the pkirepo demo repository, for testing only.",
    "2.5 Repository: CA certificates, CRLs and every version of this statement, over HTTP and LDAP.",
    "4.4.3 CRLs: issued three times a day (09:15, 14:15 and 19:00 Hong Kong time), nextUpdate within a day.",
    "Partitioned CRLs carry a critical Issuing Distribution Point; the full CRL lists every revocation.",
    "The ARL is issued at least once a year.",
    "Scheduled maintenance averages at most two hours a week and is announced beforehand.",
    "The Traditional Chinese text is authoritative.",
]

CP_ZH = """<!DOCTYPE html>
<html lang="zh-Hant">
<head><meta charset="utf-8"><title>粵港電子簽名證書互認證書政策（示範）</title></head>
<body>
<h1>粵港電子簽名證書互認證書政策（示範）</h1>
<p>本文件為示範用途之證書政策摘要。</p>
<h2>四.九 資料公布</h2>
<p>電子認證服務機構須公布證書政策、核證作業準則、使用服務所需的文件，以及上述文件每次發布及修訂的披露記錄。</p>
<h2>六.二十六 服務可用性</h2>
<p>證書狀態服務以全日（7×24）運作為目標；計劃中斷每星期不得超過兩小時，並須通知受影響人士。</p>
</body>
</html>
"""


def documents() -> list[DemoDocument]:
    """The demo's documents, in the order they are published: the earlier CPS first."""
    earlier = CPS_ZH[:1] + ["版本 1.0：首次發布。"] + CPS_ZH[1:4]
    current = CPS_ZH + ["版本 1.1：加入計劃維護及核證機關撤銷清單條文。"]
    return [
        DemoDocument("cps", "1.0", "zh-Hant", dt.date(2024, 1, 1), CPS_OID, "cps-1.0.zh-Hant.pdf",
                     _pdf("核證作業準則 1.0（示範）", earlier, font=CJK_FONT)),
        DemoDocument("cps", "1.1", "zh-Hant", dt.date(2025, 6, 1), CPS_OID, "cps-1.1.zh-Hant.pdf",
                     _pdf("核證作業準則 1.1（示範）", current, font=CJK_FONT)),
        DemoDocument("cps", "1.1", "en", dt.date(2025, 6, 1), CPS_OID, "cps-1.1.en.pdf",
                     _pdf("Certification Practice Statement 1.1 (demo)", CPS_EN, font="Helvetica")),
        DemoDocument("cp", "1.0", "zh-Hant", dt.date(2019, 9, 1), None, "cp-1.0.zh-Hant.html", CP_ZH.encode()),
    ]


def notices(now: dt.datetime) -> list[DemoNotice]:
    """Two notices: the revocation of the retired intermediate CA's certificate, and a
    maintenance window three days ahead."""
    start = (now + dt.timedelta(days=3)).replace(hour=18, minute=0, second=0, microsecond=0)
    return [
        DemoNotice(
            "ca-revocation",
            [("zh-Hant", "撤銷 Demo Retired CA 2 - 16 核證機關證書"),
             ("en", "Revocation of the Demo Retired CA 2 - 16 CA certificate")],
            [("zh-Hant", "Demo Root CA 2 已撤銷 Demo Retired CA 2 - 16 的核證機關證書（理由：已被取代）。\n"
                         "該證書已列於核證機關撤銷清單 RootCA2ARL。由其簽發的證書不再可被信賴。"),
             ("en", "Demo Root CA 2 has revoked the CA certificate of Demo Retired CA 2 - 16 "
                    "(reason: superseded).\nIt is listed in the ARL RootCA2ARL. Certificates it issued are "
                    "no longer to be relied on.")],
            now - dt.timedelta(days=30), None),
        DemoNotice(
            "maintenance",
            [("zh-Hant", "計劃維護：儲存庫及 OCSP 服務"), ("en", "Scheduled maintenance: repository and OCSP")],
            [("zh-Hant", "儲存庫及 OCSP 服務將於上述時段暫停最多一小時。已發布的證書撤銷清單在其下次更新時間前仍然有效。"),
             ("en", "The repository and the OCSP service may be unavailable for up to one hour in this window. "
                    "CRLs already published stay valid until their nextUpdate.")],
            start, start + dt.timedelta(hours=1)),
    ]
