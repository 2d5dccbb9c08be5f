//! The pool's promises: a leased slot is never reused (its pixels stay the
//! frame's across thousands of later frames), the producer skips and counts
//! rather than waits when every slot is held, readers always get the
//! newest, and a file source delivers every frame.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use dav2d_frames::{Delivery, FramePool, PixelFormat, SyntheticFrames, check_pattern, paint};

fn produce(pool: &FramePool, layout: &dav2d_frames::FrameLayout) -> Option<u64> {
    let mut slot = pool.begin(Duration::ZERO)?;
    let seq = pool.published();
    paint(slot.buffer(), layout, seq);
    Some(slot.publish(*layout, seq as i64))
}

#[test]
fn a_pool_whose_every_slot_is_held_grows_within_max_pinned_bytes() {
    let layout = PixelFormat::Gray8.layout(64, 16).unwrap();
    let pool = FramePool::new(2, layout.size, Delivery::Latest);
    pool.set_max_pinned_bytes(10 * layout.size);
    // A reader keeping 40 frames, as one collecting a clip would.
    let mut kept = Vec::new();
    for _ in 0..40 {
        produce(&pool, &layout);
        if let Some(lease) = pool.latest() {
            kept.push(lease);
        }
    }
    // It got new frames until it held ten slots' worth, then the stream skipped.
    let seqs: Vec<u64> = kept.iter().map(|l| l.meta().seq).collect();
    let distinct: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), 10, "{seqs:?}");
    assert_eq!(pool.slots(), 10);
    assert!(pool.skipped() > 0);
    for lease in &kept {
        check_pattern(lease.data(), &layout, lease.meta().seq).unwrap();
    }
    // Let go, the slots serve the stream again.
    kept.clear();
    let before = pool.published();
    produce(&pool, &layout).unwrap();
    assert_eq!(pool.latest().unwrap().meta().seq, before);
}

#[test]
fn a_leased_slot_keeps_its_frame_and_a_full_pool_skips() {
    let layout = PixelFormat::Bgra8.layout(64, 8).unwrap();
    let pool = FramePool::new(4, layout.size, Delivery::Latest);
    // Readers may hold the four slots and no more (see the next test for growth).
    pool.set_max_pinned_bytes(0);
    produce(&pool, &layout).unwrap();
    let first = pool.latest().unwrap();
    assert_eq!(first.meta().seq, 0);
    for _ in 0..5000 {
        produce(&pool, &layout);
    }
    check_pattern(first.data(), &layout, 0).unwrap();
    assert_eq!(pool.skipped(), 0, "three free slots rotate");
    // With every other slot leased, the unleased newest is rewritten.
    let second = pool.latest().unwrap();
    produce(&pool, &layout).unwrap();
    let third = pool.latest().unwrap();
    produce(&pool, &layout).unwrap();
    assert!(produce(&pool, &layout).is_some());
    assert_eq!(pool.skipped(), 0);
    // With every slot leased, the producer skips (and counts), never waits.
    let fourth = pool.latest().unwrap();
    assert!(produce(&pool, &layout).is_none());
    assert_eq!(pool.skipped(), 1);
    drop(fourth);
    for (lease, expected) in [
        (&first, 0),
        (&second, second.meta().seq),
        (&third, third.meta().seq),
    ] {
        check_pattern(lease.data(), &layout, expected).unwrap();
    }
    drop(second);
    assert!(
        produce(&pool, &layout).is_some(),
        "a released slot is free again"
    );
    assert_eq!(first.as_ptr() as usize % dav2d_frames::SLOT_ALIGN, 0);
    let copy = first.clone();
    drop(first);
    check_pattern(copy.data(), &layout, 0).unwrap();
}

#[test]
fn readers_on_threads_always_read_the_frame_they_leased() {
    let frames = SyntheticFrames {
        width: 320,
        height: 240,
        rate: 0.0,
        format: PixelFormat::Rgb8,
        stride: Some(1024),
        slots: 6,
        frames: Some(20_000),
    };
    let layout = frames.layout().unwrap();
    let mut source = frames.start().unwrap();
    let pool = source.pool().clone();
    let readers: Vec<_> = (0..3)
        .map(|reader| {
            let (pool, layout) = (pool.clone(), layout);
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut last = None;
                let mut read = 0;
                while let Some(lease) = pool.next_after(last, Duration::from_secs(10)) {
                    let seq = lease.meta().seq;
                    assert!(last.is_none_or(|l| seq > l), "always newer");
                    check_pattern(lease.data(), &layout, seq).unwrap();
                    last = Some(seq);
                    read += 1;
                    // Reader 0 keeps one lease in a hundred for the whole run.
                    if reader == 0 && read % 100 == 0 && kept.len() < 3 {
                        kept.push(lease);
                    }
                }
                for lease in &kept {
                    check_pattern(lease.data(), &layout, lease.meta().seq).unwrap();
                }
                read
            })
        })
        .collect();
    let reads: Vec<usize> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    source.stop();
    assert!(reads.iter().all(|r| *r > 0), "{reads:?}");
    assert_eq!(pool.published() + pool.skipped(), 20_000);
    assert_eq!(pool.leased(), 0, "every lease was given back");
}

#[test]
fn a_y4m_file_delivers_every_frame_in_order() {
    let dir = std::env::temp_dir().join(format!("dav2d-frames-y4m-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.y4m");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg").unwrap();
    let size = 16 * 8 * 3 / 2;
    for frame in 0..50u8 {
        writeln!(file, "FRAME").unwrap();
        file.write_all(&vec![frame; size]).unwrap();
    }
    drop(file);
    let source = dav2d_frames::open(&format!("y4m:{}", path.display())).unwrap();
    let pool = source.pool().clone();
    let mut last = None;
    let mut seen = Vec::new();
    while let Some(lease) = pool.next_after(last, Duration::from_secs(10)) {
        assert_eq!(lease.meta().layout.format, PixelFormat::I420);
        seen.push(lease.data()[0]);
        last = Some(lease.meta().seq);
    }
    assert_eq!(seen, (0..50).collect::<Vec<u8>>(), "every frame, in order");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn urls_say_what_is_wrong() {
    for (url, part) in [
        (
            "synthetic:640x480@30?format=yuyv",
            "unknown pixel format 'yuyv'",
        ),
        ("synthetic:0x480", "must be from 1 to 16384"),
        (
            "synthetic:640x480@fast",
            "not a number of frames per second",
        ),
        ("synthetic:64x48?stride=10", "shorter than a row"),
        ("synthetic:64x48?slots=1", "must be from 2 to"),
        ("y4m:", "names no file"),
        (
            "y4m:/nonexistent/clip.y4m",
            "cannot open /nonexistent/clip.y4m",
        ),
        ("rtsp://camera", "unknown frame source 'rtsp'"),
        ("webcam", "is not a frame URL"),
    ] {
        let error = dav2d_frames::open(url).err().unwrap();
        assert!(error.contains(part), "{url}: {error}");
    }
}

#[test]
fn frames_sent_over_tcp_arrive_and_a_lying_header_is_refused() {
    use std::io::{BufRead, BufReader};

    use dav2d_frames::tcp::encode_header;
    let source = dav2d_frames::open("tcp://127.0.0.1:0?slots=4&max_bytes=65536").unwrap();
    let address = source.address().unwrap();
    let pool = source.pool().clone();
    let layout = PixelFormat::Rgba8
        .layout(16, 4)
        .unwrap()
        .with_stride(80)
        .unwrap();
    let mut producer = std::net::TcpStream::connect(address).unwrap();
    let mut last = None;
    for seq in 0..3u64 {
        let mut payload = vec![0u8; layout.size];
        paint(&mut payload, &layout, seq);
        producer
            .write_all(&encode_header(&layout, 1_000 + seq as i64))
            .unwrap();
        producer.write_all(&payload).unwrap();
        let lease = pool.next_after(last, Duration::from_secs(10)).unwrap();
        assert_eq!(lease.meta().layout, layout, "the pitch is kept as sent");
        assert_eq!(lease.meta().ts_ns, 1_000 + seq as i64);
        check_pattern(lease.data(), &layout, seq).unwrap();
        last = Some(lease.meta().seq);
    }
    drop(producer);
    // A header whose length disagrees with its dimensions.
    let mut liar = std::net::TcpStream::connect(address).unwrap();
    let mut header = encode_header(&layout, 0);
    header[40..48].copy_from_slice(&7u64.to_le_bytes());
    liar.write_all(&header).unwrap();
    let mut answer = String::new();
    BufReader::new(&liar).read_line(&mut answer).unwrap();
    assert!(
        answer.contains("bytes 40..48: the payload length 7 disagrees"),
        "{answer}"
    );
    // Absurd dimensions and a wrong magic say so too; the stream keeps running.
    for (at, bytes, part) in [
        (8usize, 100_000u32.to_le_bytes(), "not a frame size"),
        (0, *b"JPEG", "starts with the magic DV2F"),
    ] {
        let mut bad = std::net::TcpStream::connect(address).unwrap();
        let mut header = encode_header(&layout, 0);
        header[at..at + 4].copy_from_slice(&bytes);
        bad.write_all(&header).unwrap();
        let mut answer = String::new();
        BufReader::new(&bad).read_line(&mut answer).unwrap();
        assert!(answer.contains(part), "{answer}");
    }
    let mut again = std::net::TcpStream::connect(address).unwrap();
    let mut payload = vec![0u8; layout.size];
    paint(&mut payload, &layout, 9);
    again.write_all(&encode_header(&layout, 5)).unwrap();
    again.write_all(&payload).unwrap();
    let lease = pool.next_after(last, Duration::from_secs(10)).unwrap();
    check_pattern(lease.data(), &layout, 9).unwrap();
}

#[test]
fn a_tcp_frame_stream_with_a_token_takes_one_authenticated_producer_and_times_out_idle_ones() {
    use std::io::{BufRead, BufReader};

    use dav2d_frames::tcp::encode_header;
    let options = dav2d_frames::OpenOptions {
        least_slots: 0,
        token: Some("s3cret".to_string()),
    };
    let source = dav2d_frames::open_with(
        "tcp://127.0.0.1:0?max_bytes=65536&idle_timeout=0.3&partial_timeout=0.3",
        &options,
    )
    .unwrap();
    let address = source.address().unwrap();
    let pool = source.pool().clone();
    let layout = PixelFormat::Gray8.layout(8, 2).unwrap();
    let mut payload = vec![0u8; layout.size];
    paint(&mut payload, &layout, 1);
    let answer_of = |stream: &std::net::TcpStream| {
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        answer
    };
    // No AUTH line, or a wrong token: told why, and nothing is published.
    for first in [b"AUTH nope\n".to_vec(), encode_header(&layout, 1).to_vec()] {
        let mut intruder = std::net::TcpStream::connect(address).unwrap();
        intruder.write_all(&first).unwrap();
        let answer = answer_of(&intruder);
        assert!(
            answer.contains("requires a first line `AUTH <token>`"),
            "{answer}"
        );
    }
    assert_eq!(pool.published(), 0);
    // The right token: frames arrive; a second producer meanwhile is turned away.
    let mut producer = std::net::TcpStream::connect(address).unwrap();
    producer.write_all(b"AUTH s3cret\r\n").unwrap();
    producer.write_all(&encode_header(&layout, 7)).unwrap();
    producer.write_all(&payload).unwrap();
    let lease = pool.next_after(None, Duration::from_secs(10)).unwrap();
    assert_eq!(lease.meta().ts_ns, 7);
    check_pattern(lease.data(), &layout, 1).unwrap();
    let other = std::net::TcpStream::connect(address).unwrap();
    let answer = answer_of(&other);
    assert!(answer.contains("already has a producer"), "{answer}");
    // Half a frame, then silence: closed by the partial timeout, saying so.
    producer.write_all(&encode_header(&layout, 8)).unwrap();
    producer.write_all(&payload[..3]).unwrap();
    let answer = answer_of(&producer);
    assert!(answer.contains("partial_timeout"), "{answer}");
    // Connected and silent: closed by the idle timeout, saying so.
    let idle = std::net::TcpStream::connect(address).unwrap();
    let answer = answer_of(&idle);
    assert!(answer.contains("idle_timeout"), "{answer}");
    // The stream still serves the next producer.
    let mut again = std::net::TcpStream::connect(address).unwrap();
    again.write_all(b"AUTH s3cret\n").unwrap();
    again.write_all(&encode_header(&layout, 9)).unwrap();
    again.write_all(&payload).unwrap();
    let lease = pool
        .next_after(Some(lease.meta().seq), Duration::from_secs(10))
        .unwrap();
    assert_eq!(lease.meta().ts_ns, 9);
}

#[test]
fn a_connection_that_has_not_authenticated_never_holds_the_stream() {
    use std::io::{BufRead, BufReader};

    use dav2d_frames::tcp::encode_header;
    let options = dav2d_frames::OpenOptions {
        least_slots: 0,
        token: Some("s3cret".to_string()),
    };
    let source = dav2d_frames::open_with("tcp://127.0.0.1:0?max_bytes=65536", &options).unwrap();
    let address = source.address().unwrap();
    let pool = source.pool().clone();
    let layout = PixelFormat::Gray8.layout(8, 2).unwrap();
    let mut payload = vec![0u8; layout.size];
    paint(&mut payload, &layout, 3);
    // Two connections that send nothing, or half the AUTH line, come first.
    let silent = std::net::TcpStream::connect(address).unwrap();
    let mut partial = std::net::TcpStream::connect(address).unwrap();
    partial.write_all(b"AUT").unwrap();
    // The real producer is served at once.
    let mut producer = std::net::TcpStream::connect(address).unwrap();
    producer.write_all(b"AUTH s3cret\n").unwrap();
    producer.write_all(&encode_header(&layout, 11)).unwrap();
    producer.write_all(&payload).unwrap();
    let lease = pool.next_after(None, Duration::from_secs(4)).unwrap();
    assert_eq!(lease.meta().ts_ns, 11);
    check_pattern(lease.data(), &layout, 3).unwrap();
    // The waiting ones are told the stream has its producer.
    for waiting in [&silent, &partial] {
        let mut answer = String::new();
        BufReader::new(waiting).read_line(&mut answer).unwrap();
        assert!(answer.contains("already has a producer"), "{answer}");
    }
}

/// The process's resident memory, in bytes (Linux).
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_pool_takes_memory_only_as_frames_are_written() {
    let before = resident();
    // 16 slots of 64 MiB: 1 GiB if it were taken up front.
    let pool = FramePool::new(16, 64 << 20, Delivery::Latest);
    let idle = resident().saturating_sub(before);
    assert!(idle < 256 << 20, "an idle pool holds {idle} bytes");
    // Slots stay aligned, and a written frame reads back.
    let layout = PixelFormat::Gray8.layout(1024, 1024).unwrap();
    let mut slot = pool.begin(Duration::ZERO).unwrap();
    let buffer = slot.buffer();
    assert_eq!(buffer.as_ptr() as usize % dav2d_frames::SLOT_ALIGN, 0);
    assert!(buffer.iter().take(layout.size).all(|b| *b == 0), "zeroed");
    paint(&mut buffer[..layout.size], &layout, 5);
    slot.publish(layout, 1);
    let lease = pool.latest().unwrap();
    check_pattern(lease.data(), &layout, 5).unwrap();
}

#[test]
fn a_pool_over_max_pinned_bytes_is_refused_before_anything_is_allocated() {
    for (url, slots) in [
        (
            "tcp://127.0.0.1:0?max_bytes=268435456&slots=64",
            "64 slots of 268435456 bytes (16.00 GiB)",
        ),
        (
            "synthetic:8192x8192@0?format=bgra8&slots=64",
            "64 slots of 268435456 bytes (16.00 GiB)",
        ),
        (
            "synthetic:64x64@0?format=gray8&slots=4&max_pinned_bytes=1000",
            "4 slots of 4096 bytes",
        ),
    ] {
        let error = dav2d_frames::FrameUrl::parse(url).unwrap_err();
        assert!(
            error.contains(slots) && error.contains("max_pinned_bytes"),
            "{error}"
        );
    }
    // Raised, it is taken.
    dav2d_frames::FrameUrl::parse("synthetic:64x64@0?format=gray8&slots=4&max_pinned_bytes=16384")
        .unwrap();
    // A y4m file's frames are known when it is opened: a 40-byte file that
    // announces 8192 x 8192 4:4:4 frames is refused then, not allocated.
    let dir = std::env::temp_dir().join(format!("dav2d-y4m-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("huge.y4m");
    std::fs::write(&file, b"YUV4MPEG2 W8192 H8192 C444\nFRAME\n").unwrap();
    let error = match dav2d_frames::open(&format!("y4m:{}?slots=8", file.display())) {
        Ok(_) => panic!("the pool was made"),
        Err(error) => error,
    };
    assert!(error.contains("max_pinned_bytes"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
