//! A random model written by `random::export` loads back through our own loader with the
//! identical weights (same logits as the in-memory model) and a tokenizer that round-trips text.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::layers::download;
use greater_models::model::LoadedModel;
use greater_models::random;

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
    random::export(shape, 11, dir.path()).unwrap();
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
