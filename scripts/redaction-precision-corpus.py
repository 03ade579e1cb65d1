#!/usr/bin/env python3
"""Write tests/redaction_precision.tsv: log text that holds no secret but
looks like one (epoch timestamps, ids, hashes, addresses, versions, ISBNs,
tracking numbers, phone-shaped ranges, Luhn-valid numbers no card network
issues). The redaction tests require every row to pass unchanged, as a
JSON `msg` and as a text line. Deterministic: rerun after editing and
commit both files.

Run: python3 scripts/redaction-precision-corpus.py > tests/redaction_precision.tsv
"""
import hashlib
import random
import uuid

rng = random.Random(20261207)
rows = []


def add(category, text):
    assert "\t" not in text and "\n" not in text
    rows.append((category, text))


def luhn_ok(digits):
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def luhn_valid_near(n, width):
    """The first number >= n (as `width` digits) that passes Luhn: the
    look-alikes most likely to be taken for a card."""
    while True:
        s = str(n).zfill(width)
        if luhn_ok(s):
            return s
        n += 1


# Epoch timestamps, 2001 to 2033, in ms, µs and ns; every one Luhn-valid.
for _ in range(60):
    ms = rng.randrange(1_000_000_000_000, 2_000_000_000_000)
    v = luhn_valid_near(ms, 13)
    add("epoch_ms", rng.choice([f"job finished at epoch_ms={v}", f"ts {v} took 12 ms", f"since={v}&limit=50"]))
for _ in range(40):
    us = luhn_valid_near(rng.randrange(10**15, 2 * 10**15), 16)
    add("epoch_us", rng.choice([f"recorded at {us}", f"start_us={us} end_us={int(us) + 1500}"]))
for _ in range(40):
    ns = luhn_valid_near(rng.randrange(10**18, 2 * 10**18), 19)
    add("epoch_ns", rng.choice([f"span start {ns}", f"timeUnixNano={ns}"]))

# Snowflake-style ids (Twitter, Discord, Sonyflake): 17 to 19 digits from 1.
for _ in range(40):
    width = rng.choice([17, 18, 19])
    sid = luhn_valid_near(rng.randrange(10 ** (width - 1), 2 * 10 ** (width - 1)), width)
    add("snowflake", rng.choice([f"message {sid} deleted", f"guild_id={sid}", f"tweet/{sid}"]))

# Order, invoice and payment ids.
for _ in range(30):
    day = f"2026{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
    seq = luhn_valid_near(int(day + f"{rng.randrange(0, 10**8):08d}"), 16)
    add("order_id", rng.choice([f"order {seq} shipped", f"invoice INV-{seq}", f"ORD-{day}-{rng.randrange(10**6):06d} paid"]))

# UUIDs (v4 and time-ordered v7-shaped).
for _ in range(30):
    add("uuid", f"request {uuid.UUID(int=rng.getrandbits(128), version=4)} done")
for _ in range(10):
    hexs = f"{rng.getrandbits(48):012x}7{rng.getrandbits(12):03x}{rng.getrandbits(64):016x}"
    add("uuid", f"id={hexs[:8]}-{hexs[8:12]}-{hexs[12:16]}-{hexs[16:20]}-{hexs[20:32]}")

# SHA-1 / SHA-256 hex, git commits, image digests, container ids.
for i in range(40):
    data = f"blob-{i}-{rng.random()}".encode()
    sha1, sha256 = hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest()
    add("hash", rng.choice([
        f"commit {sha1}",
        f"checkout {sha1[:7]} (HEAD)",
        f"sha256sum {sha256}  app.tar.gz",
        f"image registry.example.com/team/api@sha256:{sha256}",
        f"containerd://{sha256}",
        f"etag \"{sha1}\"",
    ]))

# Numbers made only of digits inside hex digests (runs of 13+ digits).
for _ in range(10):
    digits = "".join(rng.choice("0123456789") for _ in range(20))
    add("hash", f"digest sha256:{digits}{hashlib.sha256(digits.encode()).hexdigest()[:44]}")

# IPv4, IPv6, ports, CIDRs.
for _ in range(30):
    ip = ".".join(str(rng.randrange(256)) for _ in range(4))
    add("ip", rng.choice([f"client {ip}:{rng.randrange(1024, 65535)} connected", f"allow {ip}/24", f"x-forwarded-for: {ip}"]))
for _ in range(20):
    groups = [f"{rng.getrandbits(16):x}" for _ in range(8)]
    add("ip", rng.choice([f"peer [{':'.join(groups)}]:443", f"addr {groups[0]}:{groups[1]}::{groups[7]}"]))

# Versions and builds.
for _ in range(40):
    a, b, c = rng.randrange(0, 30), rng.randrange(0, 200), rng.randrange(0, 10000)
    add("version", rng.choice([
        f"upgraded to v{a}.{b}.{c}",
        f"go{a}.{b}.{c % 20}",
        f"Chrome/{100 + a}.0.{c}.{b}",
        f"kernel 6.{a}.0-{b}-amd64",
        f"build 1.010-{c:04d}-{rng.randrange(10000):04d}",
        f"version {a}.{b}.{c}-rc.2+build.{luhn_valid_near(rng.randrange(10**13, 10**14), 14)}",
        f"release 2026.{rng.randrange(1, 13):02d}.{c}",
    ]))

# ISBNs (valid check digits), ISSNs.
def isbn13(body):
    s = sum((1 if i % 2 == 0 else 3) * int(d) for i, d in enumerate(body))
    return body + str((10 - s % 10) % 10)
for _ in range(25):
    n = isbn13("978" + "".join(rng.choice("0123456789") for _ in range(9)))
    add("isbn", rng.choice([f"ISBN {n}", f"ISBN-13: {n[:3]}-{n[3]}-{n[4:8]}-{n[8:12]}-{n[12]}", f"book isbn={n}"]))

# Parcel tracking numbers: UPS 1Z, FedEx 12/15 digits, USPS 20/22 digits,
# DHL 10 digits.
for _ in range(40):
    add("tracking", rng.choice([
        f"UPS 1Z{rng.getrandbits(24):06X}{rng.randrange(10**10):010d}",
        f"FedEx tracking {rng.randrange(10**11, 10**12)}",
        f"FedEx {luhn_valid_near(rng.randrange(10**14, 10**15), 15)}",
        f"USPS 94001{rng.randrange(10**16, 10**17)}",
        f"USPS {rng.randrange(10**19, 10**20)}",
        f"DHL waybill {rng.randrange(10**9, 10**10)}",
    ]))

# Phone-shaped numbers that are not phone numbers: ranges, dates, codes,
# business registration numbers, ids in longer dash-joined runs.
for _ in range(50):
    a, b, c = rng.randrange(1000, 9999), rng.randrange(1000, 9999), rng.randrange(100, 999)
    add("phone_shaped", rng.choice([
        f"ports {a}-{b}",
        f"Range: bytes={a}-{a + b}",
        f"rows 0{c}-{a}-{b}-{c} scanned",
        f"ticket 2026-010-{a}-{b}",
        f"business no. {c}-{rng.randrange(10, 99)}-{rng.randrange(10000, 99999)}",
        f"customs 0{c}{a}{b}",
        f"seq {rng.randrange(10**9, 10**10)}-{rng.randrange(10**9, 10**10)}",
        f"zip {rng.randrange(10000, 99999)}, date {rng.randrange(2000, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        f"lat 37.{rng.randrange(10**8)} lon 127.{rng.randrange(10**8)}",
        f"coords 0{c}.{a}{b}",
    ]))

# Luhn-valid numbers of card lengths that no network issues, and numbers
# with a network's prefix but not its length.
off_network = ["1", "7", "80", "82", "83", "84", "85", "86", "87", "88", "89", "0", "56", "57", "58", "29", "31", "32", "33"]
for _ in range(50):
    prefix = rng.choice(off_network)
    width = rng.randrange(13, 20)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(width - len(prefix) - 1))
    n = luhn_valid_near(int(body) * 10, width)
    if not n.startswith(prefix):
        continue
    add("luhn_off_network", rng.choice([f"ref {n}", f"account {n} reconciled", f"batch={n}"]))
for prefix, width in [("4", 14), ("4", 15), ("4", 17), ("4", 18), ("34", 16), ("37", 13), ("51", 15), ("55", 19), ("9", 15), ("9", 19), ("62", 15), ("36", 13)]:
    for _ in range(2):
        body = prefix + "".join(rng.choice("0123456789") for _ in range(width - len(prefix) - 1))
        n = luhn_valid_near(int(body) * 10, width)
        if n.startswith(prefix):
            add("luhn_wrong_length", f"ref {n}")

# Numbers shaped like resident registration numbers that are not: no real
# date, a century digit of 0 or 9, a 13-digit run without its check digit.
for _ in range(20):
    add("rrn_shaped", rng.choice([
        f"id {rng.randrange(10, 99)}{rng.randrange(13, 99)}{rng.randrange(1, 28):02d}-{rng.randrange(1, 8)}{rng.randrange(10**6):06d}",
        f"ref {rng.randrange(10, 99)}0101-{rng.choice('09')}{rng.randrange(10**6):06d}",
        f"serial 2026-{rng.randrange(10, 99)}0101-1{rng.randrange(10**6):06d}",
    ]))

# Things with an @ that are not e-mail addresses.
for _ in range(20):
    add("at_sign", rng.choice([
        f"cloning git@github.com:org-{rng.randrange(100)}/repo.git",
        f"remote ssh://git@gitlab.example.com/team/svc-{rng.randrange(100)}.git",
        f"npm install lodash@4.17.{rng.randrange(30)}",
        f"added @types/node@20.11.{rng.randrange(30)}",
        f"pip install app@git+https://github.com/org/app@v1.{rng.randrange(9)}",
        f"connect user@localhost:{rng.randrange(1024, 65535)}",
        f"handler @Override at line {rng.randrange(1000)}",
    ]))

# Key-shaped words that are not key=value secrets, and the shell's PWD.
for _ in range(20):
    add("key_words", rng.choice([
        f"max_tokens={rng.randrange(100, 9000)}",
        f"token_count: {rng.randrange(10**6)}",
        f"secret_version={rng.randrange(1, 99)}",
        f"password_changed_at=2026-0{rng.randrange(1, 9)}-01T00:00:00Z",
        f"PWD=/srv/app-{rng.randrange(100)}",
        f"rotated {rng.randrange(9)} secrets, {rng.randrange(9)} tokens",
        f"session_count={rng.randrange(10**5)}",
    ]))

print("# Redaction precision corpus: category<TAB>text. None of these is a secret:")
print("# each must pass unchanged, as a JSON msg and as a text line.")
print("# Generated by scripts/redaction-precision-corpus.py; do not edit by hand.")
for category, text in rows:
    print(f"{category}\t{text}")
