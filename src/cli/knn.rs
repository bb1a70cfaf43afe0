//! `fgssl knn`: k-NN top-1 of frozen backbone features (ANCHORS.md §2.2 #7): the train split is the labelled
//! reference set, val and test are the queries. Works on any file holding a ResNet backbone: an `fgssl pretrain` or
//! `fgssl finetune` output, or a torchvision state dict.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::model_file::{backbone_arch, cache_anchor, resolve_weights, Images, ViewArgs};
use super::training_args::DataArgs;
use super::{load_backbone, CliResult, Selected};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::resnet::{Arch, ResNet};
use crate::model::State;
use crate::training::knn::{knn_predict, top1, KnnConfig, Vote};
use crate::weights::{self, write_atomic};

/// How the neighbours vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VoteKind {
    /// Weight exp(cosine / T) per neighbour (solo-learn's WeightedKNNClassifier, DINO).
    Weighted,
    /// One vote per neighbour.
    Majority,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "k-NN top-1 accuracy of frozen backbone features (train split = reference, val and test = queries)",
    after_help = "Examples:\n  fgssl knn --weights runs/ssl --data ~/data/ISIC2018\n  \
                  fgssl knn --weights resnet50.safetensors --data data/synth --k 10 --vote majority\n\n\
                  Features: global-average-pooled layer4 in evaluation mode of the center crop (SIZE of RESIZE). They\n\
                  are L2-normalised and compared by cosine similarity; each query's K most similar training images vote\n\
                  for their label with weight exp(similarity / T) (default K 20, T 0.07, as solo-learn and DINO), or\n\
                  one vote each with --vote majority. Ties: the lower class index wins. Splits follow `fgssl finetune`."
)]
pub struct KnnArgs {
    /// Read flags from a TOML file (keys are the long flag names, `batch_size = 64`); the command line overrides it.
    #[arg(long, value_name = "FILE.toml")]
    #[allow(dead_code)] // expanded into flags before parsing (config_file.rs)
    pub config: Option<std::path::PathBuf>,
    /// Weights with a ResNet backbone (fgssl pretrain/finetune output or its run folder, or torchvision names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Backbone (default: the file's metadata, else the one ResNet its tensors fit).
    #[arg(long, value_parser = |s: &str| s.parse::<Arch>().map_err(|e| e.to_string()))]
    pub arch: Option<Arch>,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Neighbours per query (capped at the reference set's size).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub k: u32,
    #[arg(long, value_enum, default_value_t = VoteKind::Weighted)]
    pub vote: VoteKind,
    /// Temperature of the weighted vote.
    #[arg(long, default_value_t = 0.07)]
    pub temperature: f64,
    /// Also write the results as JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: KnnArgs) -> CliResult {
    match args.view.compute.select()? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

/// Evaluation-mode pooled layer4 features `[n, C5]` of every image.
fn features<B: Backend>(b: &B, net: &ResNet, st: &mut State<B>, images: &Images, size: usize, batch: usize) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(images.len() * net.arch.feature_dim());
    images.for_each_view(b, size, batch, |x| {
        out.extend(net.embed(b, st, x)?.to_host(b)?);
        Ok(())
    })?;
    Ok(out)
}

fn run_on<B: Backend>(b: &B, args: KnnArgs) -> CliResult {
    eprintln!("device: {}", super::precision::describe(b));
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        return Err(Error::Invalid(format!("--temperature must be a positive number, got {}", args.temperature)).into());
    }
    let sd = weights::read_state_dict(&resolve_weights(&args.weights, "backbone.safetensors")?)?;
    let anchor = cache_anchor(&sd.path);
    let arch = backbone_arch(&sd, args.arch)?;
    let (net, reg, host, report) = load_backbone(&sd, arch)?;
    eprintln!(
        "weights {} ({arch}): {} backbone tensors loaded, {} other tensors ignored",
        sd.path.display(),
        report.loaded.len(),
        report.unexpected.len()
    );
    let (size, resize) = args.view.resolve(&sd.metadata, &sd.path)?;
    let (ds, splits) = args.data.load()?;
    let k = ds.class_names.len();
    let mut st = State::upload(b, &reg, &host)?;
    let batch = args.view.batch_size as usize;
    let labels = |indices: &[usize]| -> Vec<usize> { indices.iter().map(|&i| ds.samples[i].label.expect("split indices are labelled")).collect() };

    let reference_cache = args.data.cache(&ds, &splits.train, "train", resize, &anchor)?;
    let reference = features(b, &net, &mut st, &Images::Cache(reference_cache), size, batch)?;
    let reference_labels = labels(&splits.train);
    let vote = match args.vote {
        VoteKind::Weighted => Vote::Weighted { temperature: args.temperature },
        VoteKind::Majority => Vote::Majority,
    };
    let cfg = KnnConfig { k: (args.k as usize).min(reference_labels.len()), vote };
    let vote_text = match vote {
        Vote::Weighted { temperature } => format!("weighted, T {temperature}"),
        Vote::Majority => "majority".to_string(),
    };
    println!("k-NN ({arch} layer4 features, cosine, k {}, {vote_text}; reference: {} train images of {})", cfg.k, reference_labels.len(), ds.format);
    let dim = net.arch.feature_dim();
    let mut results = serde_json::Map::new();
    for (name, indices) in [("val", &splits.val), ("test", &splits.test)] {
        if indices.is_empty() {
            continue;
        }
        let cache = args.data.cache(&ds, indices, name, resize, &anchor)?;
        let queries = features(b, &net, &mut st, &Images::Cache(cache), size, batch)?;
        let truth = labels(indices);
        let predicted = knn_predict(&reference, &reference_labels, &queries, dim, k, &cfg)?;
        let acc = top1(&predicted, &truth);
        println!("{name}: top-1 {acc:.4} ({} of {} images)", predicted.iter().zip(&truth).filter(|(p, t)| p == t).count(), truth.len());
        results.insert(name.to_string(), json!({"top1": acc, "n": truth.len()}));
    }
    if let Some(path) = &args.json {
        let v = json!({
            "weights": sd.path, "arch": arch.to_string(), "data": ds.root, "format": ds.format, "k": cfg.k,
            "vote": match vote { Vote::Weighted { .. } => "weighted", Vote::Majority => "majority" },
            "temperature": matches!(vote, Vote::Weighted { .. }).then_some(args.temperature),
            "similarity": "cosine", "size": size, "resize": resize, "precision": b.precision().name(), "reference": {"split": "train", "n": reference_labels.len()},
            "results": results,
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(format!("k-NN JSON: {e}")))?;
        write_atomic(path, format!("{text}\n").as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
