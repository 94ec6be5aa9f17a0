//! A random model written by `random::export` loads back through our own loader with the
//! identical weights (same logits as the in-memory model) and a tokenizer that round-trips text.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::layers::download;
use greater_models::model::LoadedModel;
use greater_models::random::{self, WeightDtype};

fn logits(model: &dyn CausalLm, ids: &[u32]) -> Vec<f32> {
    let t = Tensor::<2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, ids.len()]),
        model.device(),
    );
    download(model.forward_embeds(model.embed(t), None, &mut KvCache::uncached(1)))
}

#[test]
fn exported_tiny_model_loads_back_with_the_same_logits_and_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let shape = random::shape("tiny").unwrap();
    random::export(shape, 11, WeightDtype::F32, dir.path()).unwrap();
    let device = greater_models::default_device();
    let loaded = LoadedModel::load(dir.path(), &device).unwrap();
    let config = shape.config().unwrap();
    assert_eq!(loaded.config(), &config);
    let memory = AnyModel::load(&config, &shape.weights(&config, 11), &device).unwrap();
    let ids = [2, 17, 300, 5, 9, 61, 0, 33];
    let (got, want) = (logits(&loaded.model, &ids), logits(&memory, &ids));
    greater_testkit::assert_close_f32("exported logits", &got, &want, 0.0);
    // Another seed gives other weights: the comparison is sensitive.
    let other = AnyModel::load(&config, &shape.weights(&config, 12), &device).unwrap();
    assert!(logits(&other, &ids).iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3));

    let text = "Hello, world! Ünïcode → ok\n  two spaces";
    let enc = loaded.tokenizer.encode(text, false).unwrap();
    assert_eq!(enc.len(), text.len(), "one token per byte");
    assert_eq!(loaded.tokenizer.decode(&enc, false).unwrap(), text);
    // Every id the model can emit decodes (fillers above the bytes).
    assert_eq!(loaded.tokenizer.vocab_size(), config.vocab_size);
    assert!(loaded.tokenizer.decode(&[319], false).is_ok());
    let chat = loaded.encode_chat("Is 2 > 1?").unwrap();
    assert_eq!(chat[0], 4, "the template opens with <|im_start|>");
    assert!(chat.contains(&1), "the user turn is closed by <|im_end|>");
}

#[test]
fn half_precision_exports_hold_the_rounded_weights_in_half_the_bytes() {
    let shape = random::shape("tiny").unwrap();
    let config = shape.config().unwrap();
    let device = greater_models::default_device();
    let ids = [2, 17, 300, 5, 9, 61, 0, 33];
    let f32_dir = tempfile::tempdir().unwrap();
    random::export(shape, 11, WeightDtype::F32, f32_dir.path()).unwrap();
    let f32_bytes = std::fs::metadata(f32_dir.path().join("model.safetensors")).unwrap().len();
    let full = logits(&AnyModel::load(&config, &shape.weights(&config, 11), &device).unwrap(), &ids);
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let dir = tempfile::tempdir().unwrap();
        random::export(shape, 11, dtype, dir.path()).unwrap();
        let bytes = std::fs::metadata(dir.path().join("model.safetensors")).unwrap().len();
        // The header is the same size, the data half.
        assert!(bytes < f32_bytes * 6 / 10, "{dtype:?}: {bytes} of {f32_bytes} bytes");
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let want = if dtype == WeightDtype::F16 { "float16" } else { "bfloat16" };
        assert!(text.contains(want), "{text}");
        let loaded = LoadedModel::load(dir.path(), &device).unwrap();
        let rounded = AnyModel::load(&config, &shape.weights_in(&config, 11, dtype), &device).unwrap();
        let (got, want) = (logits(&loaded.model, &ids), logits(&rounded, &ids));
        greater_testkit::assert_close_f32("half logits", &got, &want, 0.0);
        // Rounding moved the logits (so the comparison above saw the half weights).
        assert!(got.iter().zip(&full).any(|(a, b)| a != b), "{dtype:?} changed nothing");
    }
    assert_eq!(WeightDtype::Bf16.round(1.0 + 1.0 / 256.0), 1.0);
    assert_eq!(WeightDtype::F16.round(1.0 + 1.0 / 256.0), 1.0 + 1.0 / 256.0);
    assert!("f8".parse::<WeightDtype>().unwrap_err().contains("f32, f16 or bf16"));
}
