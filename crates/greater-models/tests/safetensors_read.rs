//! `SafetensorsWeights` on small files written here: one file, a folder, shards with an index,
//! f32/f16/bf16, prefixed names, and the errors that name file and tensor.

use std::path::Path;

use ::safetensors::{Dtype, tensor::TensorView};
use greater_models::AnyModel;
use greater_models::LoadError;
use greater_models::config::{Family, ModelConfig};
use greater_models::loading::memory::MemoryWeights;
use greater_models::loading::safetensors::{SafetensorsWeights, canonical_name};
use greater_models::loading::{HostTensor, WeightSource};
use half::{bf16, f16};

/// Raw little-endian bytes of one tensor.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32s(shape: &[usize], v: &[f32]) -> Raw {
    Raw { dtype: Dtype::F32, shape: shape.to_vec(), bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
}

fn f16s(shape: &[usize], v: &[f32]) -> Raw {
    Raw {
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
    }
}

fn bf16s(shape: &[usize], v: &[f32]) -> Raw {
    Raw {
        dtype: Dtype::BF16,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect(),
    }
}

fn write<S: AsRef<str>>(path: &Path, tensors: &[(S, Raw)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, r)| (name.as_ref().to_owned(), TensorView::new(r.dtype, r.shape.clone(), &r.bytes).unwrap()))
        .collect();
    std::fs::write(path, ::safetensors::serialize(views, None).unwrap()).unwrap();
}

fn host(shape: &[usize], data: &[f32]) -> HostTensor {
    HostTensor { shape: shape.to_vec(), data: data.to_vec() }
}

#[test]
fn single_file_in_three_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    write(
        &file,
        &[
            ("model.embed_tokens.weight", f32s(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
            ("model.norm.weight", f16s(&[3], &[1.0, 0.5, -2.0])),
            ("lm_head.weight", bf16s(&[2, 3], &[1.5, -0.25, 3.0, 0.0, -8.0, 0.125])),
        ],
    );
    for opened in [SafetensorsWeights::open(&file).unwrap(), SafetensorsWeights::open(dir.path()).unwrap()] {
        assert_eq!(opened.names(), ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"]);
        assert!(opened.contains("model.norm.weight") && !opened.contains("model.layers.0.mlp.up_proj.weight"));
        assert_eq!(opened.shape("lm_head.weight").unwrap(), [2, 3]);
        assert_eq!(opened.tensor("model.embed_tokens.weight").unwrap(), host(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        assert_eq!(opened.tensor("model.norm.weight").unwrap(), host(&[3], &[1.0, 0.5, -2.0]));
        assert_eq!(opened.tensor("lm_head.weight").unwrap(), host(&[2, 3], &[1.5, -0.25, 3.0, 0.0, -8.0, 0.125]));
        assert_eq!(opened.dtype("lm_head.weight").unwrap(), "BF16");
        assert_eq!(opened.files(), [file.as_path()]);
    }
    // Values that f16/bf16 round: 0.1 is stored as the nearest representable number.
    let rounded = dir.path().join("rounded.safetensors");
    write(&rounded, &[("a", f16s(&[1], &[0.1])), ("b", bf16s(&[1], &[0.1]))]);
    let w = SafetensorsWeights::open(&rounded).unwrap();
    assert_eq!(w.tensor("a").unwrap().data, [0.099_975_586]);
    assert_eq!(w.tensor("b").unwrap().data, [0.100_097_656]);
}

#[test]
fn sharded_checkpoint_follows_the_index() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("model-00001-of-00002.safetensors"),
        &[
            ("model.embed_tokens.weight", f32s(&[1, 2], &[1.0, 2.0])),
            ("model.layers.0.input_layernorm.weight", f16s(&[2], &[3.0, 4.0])),
        ],
    );
    write(
        &dir.path().join("model-00002-of-00002.safetensors"),
        &[("model.norm.weight", bf16s(&[2], &[5.0, 6.0])), ("unlisted.weight", f32s(&[1], &[9.0]))],
    );
    let index = serde_json::json!({
        "metadata": {"total_size": 16},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.layers.0.input_layernorm.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors"
        }
    });
    let index_path = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index_path, index.to_string()).unwrap();
    for w in [SafetensorsWeights::open(dir.path()).unwrap(), SafetensorsWeights::open(&index_path).unwrap()] {
        assert_eq!(
            w.names(),
            ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight"]
        );
        assert_eq!(w.files().len(), 2);
        assert_eq!(w.tensor("model.embed_tokens.weight").unwrap(), host(&[1, 2], &[1.0, 2.0]));
        assert_eq!(w.tensor("model.layers.0.input_layernorm.weight").unwrap(), host(&[2], &[3.0, 4.0]));
        assert_eq!(w.tensor("model.norm.weight").unwrap(), host(&[2], &[5.0, 6.0]));
    }

    // An index that names a tensor its shard lacks: the error names the shard and the tensor.
    let bad = serde_json::json!({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}});
    std::fs::write(&index_path, bad.to_string()).unwrap();
    match SafetensorsWeights::open(dir.path()).unwrap_err() {
        LoadError::MissingTensors { path, names } => {
            assert!(path.ends_with("model-00001-of-00002.safetensors"), "{}", path.display());
            assert_eq!(names, ["model.norm.weight (listed in model.safetensors.index.json)"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn multimodal_and_bare_prefixes_are_mapped() {
    assert_eq!(
        canonical_name("language_model.model.layers.3.mlp.up_proj.weight").unwrap(),
        "model.layers.3.mlp.up_proj.weight"
    );
    assert_eq!(canonical_name("model.language_model.norm.weight").unwrap(), "model.norm.weight");
    assert_eq!(canonical_name("language_model.lm_head.weight").unwrap(), "lm_head.weight");
    assert_eq!(canonical_name("layers.0.self_attn.q_proj.weight").unwrap(), "model.layers.0.self_attn.q_proj.weight");
    assert_eq!(canonical_name("embed_tokens.weight").unwrap(), "model.embed_tokens.weight");
    assert_eq!(
        canonical_name("model.layers.1.self_attn.k_norm.weight").unwrap(),
        "model.layers.1.self_attn.k_norm.weight"
    );
    assert_eq!(canonical_name("vision_tower.vision_model.embeddings.patch_embedding.weight"), None);
    assert_eq!(canonical_name("model.multi_modal_projector.mm_input_projection_weight"), None);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mm.safetensors");
    write(
        &file,
        &[
            ("language_model.model.embed_tokens.weight", f32s(&[1, 1], &[7.0])),
            ("vision_tower.patch.weight", f32s(&[1], &[1.0])),
        ],
    );
    let w = SafetensorsWeights::open(&file).unwrap();
    assert_eq!(w.names(), ["model.embed_tokens.weight"]);
    assert_eq!(w.tensor("model.embed_tokens.weight").unwrap().data, [7.0]);

    // Two stored names for one canonical name is an error naming both.
    write(&file, &[("model.norm.weight", f32s(&[1], &[1.0])), ("norm.weight", f32s(&[1], &[2.0]))]);
    let err = SafetensorsWeights::open(&file).unwrap_err().to_string();
    assert!(
        err.contains("mm.safetensors") && err.contains("`norm.weight`") && err.contains("`model.norm.weight`"),
        "{err}"
    );
}

#[test]
fn errors_name_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ints.safetensors");
    let ids =
        Raw { dtype: Dtype::I64, shape: vec![2], bytes: [3i64, 4].iter().flat_map(|x| x.to_le_bytes()).collect() };
    write(&file, &[("ids", ids)]);
    let w = SafetensorsWeights::open(&file).unwrap();
    match w.tensor("ids").unwrap_err() {
        LoadError::UnsupportedTensorType { path, tensor, kind } => {
            assert_eq!((path, tensor.as_str()), (file.clone(), "ids"));
            assert!(kind.starts_with("I64"), "{kind}");
        }
        other => panic!("unexpected {other:?}"),
    }
    match w.tensor("lm_head.weight").unwrap_err() {
        LoadError::MissingTensors { path, names } => {
            assert_eq!((path, names), (file.clone(), vec!["lm_head.weight".to_owned()]))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(w.shape("nope").is_err());

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}").unwrap();
    let err = SafetensorsWeights::open(&junk).unwrap_err();
    assert!(matches!(&err, LoadError::Format { path, .. } if *path == junk), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = SafetensorsWeights::open(empty.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(matches!(
        SafetensorsWeights::open(dir.path().join("absent.safetensors")).unwrap_err(),
        LoadError::Io { .. }
    ));
}

/// A tiny random Gemma 3 written to safetensors reads back bit-identical, under every name the
/// model expects.
#[test]
fn tiny_model_round_trip() {
    let config = ModelConfig::tiny(Family::Gemma3);
    let expected = AnyModel::expected_tensors(&config);
    let weights = MemoryWeights::random(&expected, 3, 0.3, true);
    let raws: Vec<(String, Raw)> = weights.iter().map(|(n, t)| (n.clone(), f32s(&t.shape, &t.data))).collect();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("model.safetensors"), &raws);
    let back = SafetensorsWeights::open(dir.path()).unwrap();
    assert_eq!(back.names().len(), expected.len());
    for (name, shape) in &expected {
        let t = back.tensor(name).unwrap();
        assert_eq!(&t.shape, shape, "{name}");
        let original = weights.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(&t, original, "{name}");
    }
}
