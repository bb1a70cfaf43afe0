//! Saving and loading a model's state dict: torchvision's key counts, exact round trip, shape errors.

use std::collections::BTreeMap;

use fgssl::model::resnet::{Arch, ResNet};
use fgssl::model::HostState;
use fgssl::weights::{read_state_dict, HostData};
use fgssl::Error;

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fgssl-state-dict-{}-{name}", std::process::id()))
}

#[test]
fn state_dicts_have_torchvisions_key_counts() {
    // torchvision: resnet18 122 entries, resnet34 218, resnet50 320 (fc included, num_batches_tracked included).
    for (arch, want) in [(Arch::ResNet18, 122), (Arch::ResNet34, 218), (Arch::ResNet50, 320)] {
        let (_, reg) = ResNet::new(arch, Some(1000), false);
        let sd = reg.state_dict(&HostState::init(&reg, 0));
        assert_eq!(sd.len(), want, "{arch}");
        let trackers: Vec<_> = sd.iter().filter(|(k, _)| k.ends_with("num_batches_tracked")).collect();
        assert!(trackers.iter().all(|(_, t)| t.shape.is_empty() && matches!(t.data, HostData::I64(_))), "{arch}: counters are I64 scalars");
    }
}

#[test]
fn save_then_load_round_trips_exactly() {
    let (_, reg) = ResNet::new(Arch::ResNet50, Some(7), true);
    let mut host = HostState::init(&reg, 3);
    host.buffers.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 97) as f32 * 0.25 - 3.0);
    host.batches_tracked.iter_mut().enumerate().for_each(|(i, c)| *c = 1000 + i as i64);
    let path = temp_path("rt.safetensors");
    let meta = BTreeMap::from([("arch".to_string(), "resnet50".to_string())]);
    reg.save(&path, &host, &meta).unwrap();

    let sd = read_state_dict(&path).unwrap();
    assert_eq!(sd.metadata.get("arch").map(String::as_str), Some("resnet50"));
    let mut loaded = HostState::init(&reg, 99);
    let report = reg.load(&sd, &mut loaded).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    assert_eq!(loaded.params, host.params);
    assert_eq!(loaded.buffers, host.buffers);
    assert_eq!(loaded.batches_tracked, host.batches_tracked);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn loading_another_architecture_names_the_key_and_both_shapes() {
    let (_, r18) = ResNet::new(Arch::ResNet18, None, false);
    let path = temp_path("r18.safetensors");
    r18.save(&path, &HostState::init(&r18, 0), &BTreeMap::new()).unwrap();
    let sd = read_state_dict(&path).unwrap();
    let (_, r50) = ResNet::new(Arch::ResNet50, None, false);
    let err = r50.load(&sd, &mut HostState::init(&r50, 0)).unwrap_err();
    match &err {
        Error::ShapeMismatch { key, expected, found, .. } => {
            assert_eq!(key, "layer1.0.conv1.weight");
            assert_eq!(expected, &vec![64, 64, 1, 1]);
            assert_eq!(found, &vec![64, 64, 3, 3]);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
    assert!(err.to_string().contains("layer1.0.conv1.weight"), "{err}");
    std::fs::remove_file(&path).unwrap();
}
