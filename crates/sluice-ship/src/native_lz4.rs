//! ClickHouse's own compressed format for HTTP request bodies
//! (`decompress=1`): the body is a run of blocks, each LZ4-compressed and
//! framed as the server's `CompressedReadBuffer` reads it:
//!
//! ```text
//! [16] CityHash128 v1.0.2 of what follows, high half first, each half LE
//! [1]  0x82 (LZ4)
//! [4]  block size: these 9 header bytes + the compressed data (LE)
//! [4]  uncompressed size (LE)
//! [..] LZ4 block
//! ```
//!
//! LZ4 costs a fraction of gzip's CPU on both ends (the sink's deflate was
//! a fifth of the node path's CPU), and every ClickHouse release since
//! 2016 reads it, Debian's 18.16 included. Blocks hold at most
//! [`BLOCK_BYTES`] of input, as the server's own writer does, so the plain
//! copy of a request never exists whole.

/// Input bytes per block (ClickHouse's `max_compress_block_size`).
pub const BLOCK_BYTES: usize = 1 << 20;

const METHOD_LZ4: u8 = 0x82;
const CHECKSUM: usize = 16;
const HEADER: usize = 9;

/// The records, concatenated, as a body of LZ4 blocks in `out` (cleared
/// first). `plain` is scratch for one block's input.
pub fn compress_records(records: &[&[u8]], plain: &mut Vec<u8>, out: &mut Vec<u8>) {
    out.clear();
    plain.clear();
    for record in records {
        let mut rest = *record;
        while !rest.is_empty() {
            let take = rest.len().min(BLOCK_BYTES - plain.len());
            plain.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if plain.len() == BLOCK_BYTES {
                push_block(plain, out);
                plain.clear();
            }
        }
    }
    if !plain.is_empty() {
        push_block(plain, out);
    }
}

/// Append one framed block holding `input`.
fn push_block(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let bound = lz4_flex::block::get_maximum_output_size(input.len());
    out.resize(start + CHECKSUM + HEADER + bound, 0);
    let written = lz4_flex::block::compress_into(input, &mut out[start + CHECKSUM + HEADER..])
        .expect("the output holds LZ4's bound for this input");
    out.truncate(start + CHECKSUM + HEADER + written);
    let framed = u32::try_from(HEADER + written).expect("a block is far below 4 GiB");
    let plain = u32::try_from(input.len()).expect("a block is far below 4 GiB");
    let header = &mut out[start + CHECKSUM..start + CHECKSUM + HEADER];
    header[0] = METHOD_LZ4;
    header[1..5].copy_from_slice(&framed.to_le_bytes());
    header[5..9].copy_from_slice(&plain.to_le_bytes());
    let sum = cityhash_rs::cityhash_102_128(&out[start + CHECKSUM..]).rotate_left(64);
    out[start..start + CHECKSUM].copy_from_slice(&sum.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's reading, for the tests: every block's checksum and
    /// sizes checked, the input back.
    fn decompress(mut body: &[u8]) -> (Vec<u8>, usize) {
        let mut back = Vec::new();
        let mut blocks = 0;
        while !body.is_empty() {
            let sum = u128::from_le_bytes(body[..CHECKSUM].try_into().unwrap()).rotate_right(64);
            let header = &body[CHECKSUM..CHECKSUM + HEADER];
            assert_eq!(header[0], METHOD_LZ4);
            let framed = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
            let plain = u32::from_le_bytes(header[5..9].try_into().unwrap()) as usize;
            let block = &body[CHECKSUM..CHECKSUM + framed];
            assert_eq!(cityhash_rs::cityhash_102_128(block), sum, "checksum of block {blocks}");
            assert!(plain <= BLOCK_BYTES);
            back.extend(lz4_flex::block::decompress(&block[HEADER..], plain).unwrap());
            body = &body[CHECKSUM + framed..];
            blocks += 1;
        }
        (back, blocks)
    }

    #[test]
    fn records_come_back_whole_across_block_boundaries() {
        let long: Vec<u8> = (0..3 * BLOCK_BYTES + 17).map(|i| b"abcdefgh\n"[i % 9]).collect();
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![b"{\"a\":1}\n", b"{\"b\":2}\n"],
            vec![&long],
            vec![b"x\n", &long, b"y\n"],
            vec![&long[..BLOCK_BYTES], &long[..BLOCK_BYTES]],
        ];
        let (mut plain, mut out) = (Vec::new(), Vec::new());
        for records in cases {
            compress_records(&records, &mut plain, &mut out);
            let total: usize = records.iter().map(|r| r.len()).sum();
            let (back, blocks) = decompress(&out);
            assert_eq!(back, records.concat());
            assert_eq!(blocks, total.div_ceil(BLOCK_BYTES));
        }
    }

    #[test]
    fn the_checksum_is_clickhouses() {
        // These exact bytes were inserted into a ClickHouse 18.16 table
        // with `decompress=1` and read back as "hello"; the same block with
        // the checksum's halves swapped was refused ("Checksum doesn't
        // match"). The order is the server's, not a guess.
        let mut out = Vec::new();
        compress_records(&[b"hello\n"], &mut Vec::new(), &mut out);
        assert_eq!(
            &out[CHECKSUM..],
            &[0x82, 0x10, 0, 0, 0, 0x06, 0, 0, 0, 0x60, b'h', b'e', b'l', b'l', b'o', b'\n']
        );
        assert_eq!(hex(&out[..CHECKSUM]), EXPECTED_HELLO_CHECKSUM);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const EXPECTED_HELLO_CHECKSUM: &str = "08f0793acfb1087ddacf389a022f7d10";
}
