//! What makes a detector's regex match a secret and not a look-alike: card
//! numbers of a real network with a Luhn check digit, phone numbers with a
//! Korean prefix that stand alone, resident registration numbers with a
//! real birth date (and, unseparated, a valid check digit), e-mail
//! addresses that are not a git remote. Each takes the whole value and the
//! match's range, because the context decides as much as the digits: a
//! number that continues a decimal, a version or a dash-joined id is part
//! of something else.
//!
//! None of them allocates unless it masks.

use std::ops::Range;

/// Whether the match continues something longer: a digit, `.`, `-` or `_`
/// joined to a digit or word before it, or `.`/`-` and a digit after it
/// (`1.010-1234-5678`, `2026-900101-1234567`, `4111111111111111.5`).
fn embedded(value: &[u8], m: &Range<usize>) -> bool {
    let before = |k: usize| m.start.checked_sub(k).map(|i| value[i]);
    let after = |k: usize| value.get(m.end + k - 1).copied();
    let joined_before = match before(1) {
        Some(b'.' | b'-' | b'_' | b'/') => before(2).is_some_and(|b| b.is_ascii_alphanumeric()),
        Some(b) => b.is_ascii_alphanumeric(),
        None => false,
    };
    let joined_after = match after(1) {
        Some(b'.' | b'-' | b'_') => after(2).is_some_and(|b| b.is_ascii_digit()),
        Some(b) => b.is_ascii_alphanumeric(),
        None => false,
    };
    joined_before || joined_after
}

/// Payment card networks by issuer prefix and length, from the IIN table
/// of ISO/IEC 7812 as the networks publish it (summarised in Wikipedia's
/// "Payment card number" article, checked against Visa, Mastercard, Amex,
/// Discover, JCB and UnionPay issuer guides), plus Korean domestic-only
/// cards: ISO/IEC 7812 leaves major industry identifier 9 to national use,
/// and every Korean issuer's domestic-only card is a 16-digit number
/// starting with 9 (Korean card issuers' published numbering; e.g. Kakao
/// Bank's "카드번호의 비밀", 2019). Each row: lowest and highest prefix
/// (inclusive, compared on as many digits as they have), and the lengths.
const NETWORKS: &[(u32, u32, &[usize])] = &[
    // Visa.
    (4, 4, &[13, 16, 19]),
    // Mastercard: the 51-55 range and the 2-series.
    (51, 55, &[16]),
    (2221, 2720, &[16]),
    // American Express.
    (34, 34, &[15]),
    (37, 37, &[15]),
    // Discover (and UnionPay co-branded 622126-622925, inside 62 below).
    (6011, 6011, &[16, 17, 18, 19]),
    (644, 649, &[16, 17, 18, 19]),
    (65, 65, &[16, 17, 18, 19]),
    // JCB.
    (3528, 3589, &[16, 17, 18, 19]),
    // Diners Club: Carte Blanche 300-305, International 36, and 3095, 38-39.
    (300, 305, &[14, 15, 16, 17, 18, 19]),
    (3095, 3095, &[14, 15, 16, 17, 18, 19]),
    (36, 36, &[14, 15, 16, 17, 18, 19]),
    (38, 39, &[14, 15, 16, 17, 18, 19]),
    // UnionPay.
    (62, 62, &[16, 17, 18, 19]),
    (8100, 8171, &[16, 17, 18, 19]),
    // Maestro (12-digit numbers exist; shorter than any digit run the
    // card regex reads).
    (5018, 5018, &[13, 14, 15, 16, 17, 18, 19]),
    (5020, 5020, &[13, 14, 15, 16, 17, 18, 19]),
    (5038, 5038, &[13, 14, 15, 16, 17, 18, 19]),
    (5893, 5893, &[13, 14, 15, 16, 17, 18, 19]),
    (6304, 6304, &[13, 14, 15, 16, 17, 18, 19]),
    (6759, 6759, &[13, 14, 15, 16, 17, 18, 19]),
    (6761, 6763, &[13, 14, 15, 16, 17, 18, 19]),
    // Mir.
    (2200, 2204, &[16, 17, 18, 19]),
    // Korean domestic-only cards.
    (9, 9, &[16]),
];

/// Number of decimal digits of a prefix bound.
fn digits_of(mut n: u32) -> u32 {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Whether a number of `len` digits starting with `head` (its first six
/// digits) is issued by a card network.
fn issued(head: u32, len: usize) -> bool {
    NETWORKS.iter().any(|&(low, high, lengths)| {
        let prefix = head / 10u32.pow(6 - digits_of(low));
        (low..=high).contains(&prefix) && lengths.contains(&len)
    })
}

/// A card number: a network's prefix and length, then Luhn. Every digit
/// but the last four is masked, separators kept. One pass over the digits
/// to decide; the copy is made only to mask.
pub(super) fn card(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    if embedded(value, &m) {
        return None;
    }
    let text = &value[m.clone()];
    let (mut len, mut head, mut sum) = (0usize, 0u32, 0u32);
    // Luhn from the right: double every second digit.
    for &b in text.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let d = u32::from(b - b'0');
        sum += if len % 2 == 1 {
            if d * 2 > 9 {
                d * 2 - 9
            } else {
                d * 2
            }
        } else {
            d
        };
        len += 1;
    }
    for &b in text.iter().filter(|b| b.is_ascii_digit()).take(6) {
        head = head * 10 + u32::from(b - b'0');
    }
    if !(13..=19).contains(&len) || !sum.is_multiple_of(10) || !issued(head, len) {
        return None;
    }
    let mut left = len - 4;
    Some(
        text.iter()
            .map(|&b| {
                if b.is_ascii_digit() && left > 0 {
                    left -= 1;
                    b'*'
                } else {
                    b
                }
            })
            .collect(),
    )
}

/// A phone number the regex found (`010-1234-5678`, `02 123 4567`,
/// `+82 10 1234 5678`): standing alone, 9 to 15 digits (E.164's most).
/// The middle group is masked, or all but the prefix and last four.
pub(super) fn phone(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    if embedded(value, &m) {
        return None;
    }
    // `+` must not be arithmetic or a sign glued to a word: `1+82...`.
    if value[m.start] == b'+' && m.start > 0 && value[m.start - 1].is_ascii_alphanumeric() {
        return None;
    }
    let text = &value[m];
    let digits = text.iter().filter(|b| b.is_ascii_digit()).count();
    if !(9..=15).contains(&digits) {
        return None;
    }
    let groups = text.split(|&b| b == b'-' || b == b' ').count();
    if groups >= 3 {
        let mut out = Vec::with_capacity(text.len());
        let mut group = 0;
        for &b in text {
            if b == b'-' || b == b' ' {
                group += 1;
                out.push(b);
            } else if group == groups - 2 {
                out.push(b'*');
            } else {
                out.push(b);
            }
        }
        return Some(out);
    }
    let keep_head = if text.starts_with(b"+") { 4 } else { 3 };
    let mut out = text[..keep_head].to_vec();
    out.extend(std::iter::repeat_n(b'*', text.len() - keep_head - 4));
    out.extend_from_slice(&text[text.len() - 4..]);
    Some(out)
}

/// Weights of the resident registration number's check digit.
const RRN_WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];

/// A Korean resident registration number: a real birth date and a century
/// digit, standing alone. Written without its dash, thirteen digits are
/// also an epoch in milliseconds or an order id, so that form needs the
/// check digit too (numbers issued since October 2020 have none: for them
/// a birth year of 2020 or later, which no epoch reaches, stands in).
/// Masked as `900101-1******`.
pub(super) fn rrn(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    if embedded(value, &m) {
        return None;
    }
    let text = &value[m];
    let mut digits = [0u32; 13];
    let mut n = 0;
    for &b in text {
        if b.is_ascii_digit() && n < 13 {
            digits[n] = u32::from(b - b'0');
            n += 1;
        }
    }
    if n != 13 {
        return None;
    }
    let month = digits[2] * 10 + digits[3];
    let day = digits[4] * 10 + digits[5];
    let year2 = digits[0] * 10 + digits[1];
    let century = match digits[6] {
        1 | 2 | 5 | 6 => 1900,
        3 | 4 | 7 | 8 => 2000,
        _ => return None,
    };
    let year = century + year2;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let dashed = text.get(6) == Some(&b'-');
    if !dashed {
        let sum: u32 = RRN_WEIGHTS.iter().zip(&digits).map(|(w, d)| w * d).sum();
        let check = (11 - sum % 11) % 10;
        if check != digits[12] && year < 2020 {
            return None;
        }
    }
    let mut out = text[..6].to_vec();
    if dashed {
        out.push(b'-');
    }
    out.push(text[if dashed { 7 } else { 6 }]);
    out.extend_from_slice(b"******");
    Some(out)
}

/// An e-mail address, `a***@domain.com`; not the user of an scp-style git
/// remote (`git@github.com:org/repo.git`) nor of a URL (`ssh://git@host`).
pub(super) fn email(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let after = &value[m.end..];
    if after.first() == Some(&b':')
        && after
            .get(1)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b"~_./-".contains(&b))
    {
        return None;
    }
    if value[..m.start].ends_with(b"://") {
        return None;
    }
    let text = &value[m];
    let at = text.iter().position(|&b| b == b'@')?;
    let mut out = vec![text[0]];
    out.extend_from_slice(b"***");
    out.extend_from_slice(&text[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit that makes `body` followed by it pass Luhn.
    pub(crate) fn luhn_check_digit(body: &str) -> u32 {
        let sum: u32 = body
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 0 {
                    if d * 2 > 9 {
                        d * 2 - 9
                    } else {
                        d * 2
                    }
                } else {
                    d
                }
            })
            .sum();
        (10 - sum % 10) % 10
    }

    fn whole(f: fn(&[u8], Range<usize>) -> Option<Vec<u8>>, v: &str) -> Option<String> {
        f(v.as_bytes(), 0..v.len()).map(|o| String::from_utf8(o).unwrap())
    }

    #[test]
    fn cards_need_a_network_and_luhn() {
        for (number, masked) in [
            ("4111111111111111", "************1111"),
            ("4111 1111 1111 1111", "**** **** **** 1111"),
            ("5555555555554444", "************4444"),
            ("2223003122003222", "************3222"),
            ("378282246310005", "***********0005"),
            ("6011111111111117", "************1117"),
            ("3530111333300000", "************0000"),
            ("30569309025904", "**********5904"),
            ("6200000000000005", "************0005"),
            ("6759649826438453", "************8453"),
        ] {
            assert_eq!(whole(card, number).as_deref(), Some(masked), "{number}");
        }
        // Luhn-valid, but no network issues these prefixes or lengths.
        for body in [
            "173403196937",       // epoch ms
            "173403196937400",    // epoch µs
            "183403196937400000", // snowflake-style id
            "700000000000000",
            "4111111111111",     // 14 digits: no Visa number has 14
            "37828224631000512", // Amex's prefix at 18 digits
            "94101234567890",    // Korean domestic cards have 16 digits, not 15
            "94101234567890123", // nor 18
        ] {
            let number = format!("{body}{}", luhn_check_digit(body));
            assert_eq!(whole(card, &number), None, "{number}");
        }
        let visa13 = format!("411111111111{}", luhn_check_digit("411111111111"));
        assert_eq!(whole(card, &visa13), Some(format!("*********{}", &visa13[9..])));
        let korean = format!("941012345678901{}", luhn_check_digit("941012345678901"));
        assert_eq!(whole(card, &korean), Some(format!("************{}", &korean[12..])));
        // A decimal or a longer dash-joined id is not a card.
        let v = b"ratio 0.4111111111111111";
        assert_eq!(card(v, 8..24), None);
    }

    #[test]
    fn phone_numbers_stand_alone() {
        assert_eq!(whole(phone, "010-1234-5678").as_deref(), Some("010-****-5678"));
        let v = b"v1.010-1234-5678";
        assert_eq!(phone(v, 3..16), None);
        let v = b"010-1234-5678-9";
        assert_eq!(phone(v, 0..13), None);
    }

    #[test]
    fn resident_numbers_need_a_date_and_unseparated_a_check_digit() {
        assert_eq!(whole(rrn, "900101-1234567").as_deref(), Some("900101-1******"));
        // 880101-1234568: weights give 2*8+3*8+...; its check digit is 8.
        assert_eq!(whole(rrn, "8801011234568").as_deref(), Some("8801011******"));
        assert_eq!(whole(rrn, "8801011234567"), None, "wrong check digit");
        assert_eq!(
            whole(rrn, "2101013234567").as_deref(),
            Some("2101013******"),
            "issued after 2020"
        );
        assert_eq!(whole(rrn, "1710151234567"), None, "an epoch in ms, March 2024");
        let v = b"2026-900101-1234567";
        assert_eq!(rrn(v, 5..19), None);
    }

    #[test]
    fn git_remotes_are_not_email_addresses() {
        let v = b"git@github.com:org/repo.git";
        assert_eq!(email(v, 0..14), None);
        let v = b"ssh://git@github.com/org/repo";
        assert_eq!(email(v, 6..20), None);
        let v = b"mail kim@example.com: sent";
        assert_eq!(email(v, 5..20).as_deref(), Some(&b"k***@example.com"[..]));
    }
}
