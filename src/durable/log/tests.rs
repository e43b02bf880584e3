use proptest::prelude::*;
use tidewatch_ingest::StationKey;

use super::*;

fn registry(ids: &[&str]) -> Arc<Registry> {
    let mut text = String::new();
    for id in ids {
        text += &format!(
            "[[station]]\nid = \"{id}\"\nname = \"{id}\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"330100\"\n"
        );
    }
    Arc::new(Registry::from_toml_str(&text).unwrap())
}

fn reading(station: u32, quantity: Quantity, time: i64, value: f64) -> Reading {
    Reading { sensor: SensorKey::new(StationKey(station), quantity), quality: Quality::Good, time, value }
}

fn read_all(dir: &Path, registry: &Registry, from: u64) -> (Vec<(Vec<Reading>, bool)>, Replayed) {
    let mut batches = Vec::new();
    let replayed = replay(dir, registry, from, &mut |b, held| batches.push((b.to_vec(), held))).unwrap();
    (batches, replayed)
}

#[test]
fn batches_come_back_in_order_with_their_held_flag_from_any_position() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&["A", "B"]);
    let mut log = ReadingLog::open(dir.path(), registry.clone(), false).unwrap();
    let first = vec![reading(0, Quantity::WaterLevel, 1_000, 1.5), reading(1, Quantity::Rainfall, 2_000, 0.5)];
    log.append(&first, false).unwrap();
    let middle = log.position();
    let raw = Quantity::raw("hj212:w01003").unwrap();
    let second = vec![Reading { quality: Quality::Fault, ..reading(1, raw, 3_000, 7.25) }];
    log.append(&second, true).unwrap();
    let end = log.position();

    let (all, replayed) = read_all(dir.path(), &registry, 0);
    assert_eq!(all, vec![(first, false), (second.clone(), true)]);
    assert_eq!((replayed.records, replayed.readings, replayed.end, replayed.torn), (2, 3, end, false));
    let (tail, _) = read_all(dir.path(), &registry, middle);
    assert_eq!(tail, vec![(second, true)]);
}

#[test]
fn a_log_replays_by_station_id_after_the_registry_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = ReadingLog::open(dir.path(), registry(&["A", "B", "C"]), false).unwrap();
    log.append(&[reading(1, Quantity::WaterLevel, 1, 1.0), reading(2, Quantity::WaterLevel, 1, 2.0)], false).unwrap();
    drop(log);
    // B is gone and C moved to key 0.
    let (batches, replayed) = read_all(dir.path(), &registry(&["C", "A"]), 0);
    assert_eq!(batches, vec![(vec![reading(0, Quantity::WaterLevel, 1, 2.0)], false)]);
    assert_eq!(replayed.unknown, 1);
}

#[test]
fn segments_a_checkpoint_covers_are_released_and_a_reopened_log_continues_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&["A"]);
    let mut log = ReadingLog::open(dir.path(), registry.clone(), true).unwrap();
    log.append(&[reading(0, Quantity::WaterLevel, 1, 1.0)], false).unwrap();
    drop(log);
    let mut log = ReadingLog::open(dir.path(), registry.clone(), false).unwrap();
    log.append(&[reading(0, Quantity::WaterLevel, 2, 2.0)], false).unwrap();
    let checkpoint = log.position();
    log.append(&[reading(0, Quantity::WaterLevel, 3, 3.0)], false).unwrap();
    drop(log);
    let mut log = ReadingLog::open(dir.path(), registry.clone(), false).unwrap();
    assert_eq!(segments(dir.path()).unwrap().len(), 3);
    // The first segment ends before the checkpoint; the second holds it.
    assert_eq!(log.release_before(checkpoint).unwrap(), 1);
    let (batches, _) = read_all(dir.path(), &registry, checkpoint);
    assert_eq!(batches, vec![(vec![reading(0, Quantity::WaterLevel, 3, 3.0)], false)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A crash cuts the file at any byte (or flips one): the log replays a prefix of what was
    /// written, whole batches only, and appends after it replay behind that prefix.
    #[test]
    fn a_torn_or_corrupt_tail_ends_the_log_at_the_last_whole_batch(
        sizes in prop::collection::vec(1usize..20, 1..8),
        cut in any::<prop::sample::Index>(),
        flip in prop::bool::ANY,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(&["A", "B"]);
        let mut log = ReadingLog::open(dir.path(), registry.clone(), false).unwrap();
        let mut written = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let batch: Vec<Reading> =
                (0..*n).map(|j| reading((j % 2) as u32, Quantity::WaterLevel, (i * 100 + j) as i64, j as f64)).collect();
            log.append(&batch, false).unwrap();
            written.push((batch, false));
        }
        drop(log);
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = cut.index(bytes.len());
        if flip {
            bytes[at] ^= 0x40;
        } else {
            bytes.truncate(at);
        }
        std::fs::write(&path, &bytes).unwrap();

        let mut log = ReadingLog::open(dir.path(), registry.clone(), false).unwrap();
        let after = vec![reading(0, Quantity::WaterLevel, 9_999, 1.0)];
        log.append(&after, false).unwrap();
        let (batches, _) = read_all(dir.path(), &registry, 0);
        let (last, prefix) = batches.split_last().unwrap();
        prop_assert_eq!(last, &(after, false));
        prop_assert!(prefix.len() <= written.len());
        prop_assert_eq!(prefix, &written[..prefix.len()]);
    }
}
