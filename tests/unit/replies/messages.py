"""Raw messages for reply tests, built the way real clients and MTAs write them."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP


def human(
    body: str,
    *,
    subject: str = "Re: Quick idea",
    html: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Pat Buyer <pat@buyer.example>"
    message["To"] = "sam@sender.example"
    message["Subject"] = subject
    message["Message-ID"] = "<r1@buyer.example>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, subtype="html" if html else "plain")
    return message.as_bytes()


def dsn(status: str, diagnostic: str, action: str = "failed") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.buyer.example>\r\n"
        "To: sam@sender.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn1@mx.buyer.example>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your "
        "message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.buyer.example\r\n\r\n"
        f"Final-Recipient: rfc822; pat@buyer.example\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "Message-ID: <touch1@sender.example>\r\n--b--\r\n"
    ).encode()


def arf(feedback_type: str = "abuse") -> bytes:
    return (
        "From: feedback@isp.example\r\nTo: abuse@sender.example\r\n"
        "Subject: FW: Quick idea\r\nMessage-ID: <arf1@isp.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
        "--f\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n"
        "Original-Rcpt-To: pat@buyer.example\r\n"
        "--f\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "Message-ID: <touch1@sender.example>\r\n--f--\r\n"
    ).encode()
