//! Test messages shared by the `message` tests (RFC 2045–2049 style).

/// A plain RFC 5322 text message.
pub const PLAIN: &str = "From: Alice <alice@example.test>\r\n\
To: bob@example.test\r\n\
Subject: Hello\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
Message-ID: <1@example.test>\r\n\
\r\n\
Hello Bob,\r\n\
This is a test.\r\n";

/// multipart/alternative with a quoted-printable text part and an HTML part.
pub const ALTERNATIVE: &str = "From: a@example.test\r\n\
Subject: alt\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 time!\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Caf&eacute; !</p>\r\n\
--alt--\r\n";

/// multipart/mixed: text (no Content-Type), base64 attachment, nested message/rfc822.
pub const MIXED: &str = "From: a@example.test\r\n\
Subject: mixed\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
This is a preamble.\r\n\
--outer\r\n\
Content-Language: en\r\n\
\r\n\
Plain part.\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-ID: <id1@x>\r\n\
Content-Description: Some bytes\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=a.bin\r\n\
Content-Location: http://x.test/\r\n a.bin\r\n\
\r\n\
AAECA/8=\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: inline\r\n\
Content-Language: en, de\r\n\
\r\n\
Subject: inner\r\n\
From: in@x.test\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
\r\n\
Inner body.\r\n\
--outer--\r\n\
epilogue\r\n";

/// A message/rfc822 part whose encapsulated message is itself multipart.
pub const NESTED_MULTIPART: &str = "Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=A\r\n\
\r\n\
--A\r\n\
\r\n\
first\r\n\
--A\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=B\r\n\
\r\n\
--B\r\n\
\r\n\
inner one\r\n\
--B\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>inner two</b>\r\n\
--B--\r\n\
\r\n\
--A--\r\n";

/// Encoded-word subject and From, ISO-8859-1 quoted-printable body, bare LF line ends.
pub const LATIN1_LF: &[u8] = b"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.test>\n\
Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n\
Date: Tue, 1 Feb 1994 23:30:00 +0100\n\
Content-Type: text/plain; charset=ISO-8859-1\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
Voil=E0 le caf=E9 cr=E8me,=20\n\
soft=\n\
break.\n";
