//! The command-line grammar (clap derive): global options, one variant per command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A command-line dev store over a QuiverDB database directory.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about, long_about = None)]
pub struct Cli {
    /// The database directory.
    #[arg(long, global = true, value_name = "DIR", env = "QUIVER_DB")]
    pub db: Option<PathBuf>,
    /// Print JSON (one document per line for lists of records) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// One `quiver` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the collections with their counts, dimension, metric and index parameters (fast: loads no index).
    Collections,
    /// Create an empty collection.
    Create(CreateArgs),
    /// Drop a collection and everything in it.
    Drop {
        /// The collection.
        name: String,
    },
    /// A collection's schema, index parameters and counts.
    Describe {
        /// The collection.
        name: String,
    },
    /// Import JSON Lines, CSV or fvecs into a collection (created if missing).
    Import(ImportArgs),
    /// Similarity search by text (embedded with the built-in hashing embedder) or by vector.
    Search(SearchArgs),
    /// Records whose metadata match a filter expression, in id order.
    Query {
        /// The collection.
        name: String,
        /// A Milvus filter expression, e.g. `category == 'a' and score > 0.5`.
        #[arg(long)]
        filter: String,
        /// At most this many records.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Records by id (unknown ids are reported and skipped).
    Get {
        /// The collection.
        name: String,
        /// The ids (integers for auto-id collections).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete records by id or by filter.
    Delete(DeleteArgs),
    /// Write every record as JSON Lines in the import format.
    Export {
        /// The collection.
        name: String,
        /// The output file (`-` for standard output).
        file: PathBuf,
    },
    /// Records, tombstones, index size and snapshot age of a collection.
    Stats {
        /// The collection.
        name: String,
    },
    /// Cross-check storage and index of every collection; exits non-zero on a problem.
    Check,
    /// Run the async-vs-sync demo workload (durable writes, temporary directory).
    Bench(BenchArgs),
}

/// Metric names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Squared Euclidean distance.
    L2,
    /// Inner product.
    Ip,
    /// Cosine similarity.
    Cosine,
}

impl From<MetricArg> for quiverdb::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::L2 => quiverdb::Metric::L2,
            MetricArg::Ip => quiverdb::Metric::Ip,
            MetricArg::Cosine => quiverdb::Metric::Cosine,
        }
    }
}

/// Index engines on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// QuiverDB's own HNSW graph.
    Native,
    /// The hnsw_rs graph.
    #[value(name = "hnsw_rs")]
    HnswRs,
    /// Exact search, no graph.
    Flat,
}

impl EngineArg {
    /// The engine's name in [`quiverdb::IndexOptions`].
    pub fn as_str(self) -> &'static str {
        match self {
            EngineArg::Native => "native",
            EngineArg::HnswRs => "hnsw_rs",
            EngineArg::Flat => "flat",
        }
    }
}

/// Schema of a new collection (`create`, and `import` into a missing collection).
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// Metric of a new collection.
    #[arg(long, value_enum, default_value_t = MetricArg::L2)]
    pub metric: MetricArg,
    /// Ids are assigned by the database (integers) instead of given by the caller (strings).
    #[arg(long)]
    pub auto_id: bool,
    /// Index engine of a new collection.
    #[arg(long, value_enum, default_value_t = EngineArg::Native)]
    pub engine: EngineArg,
}

/// `quiver create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The collection.
    pub name: String,
    /// Vector dimension.
    #[arg(long)]
    pub dim: usize,
    /// Schema options.
    #[command(flatten)]
    pub schema: SchemaArgs,
}

/// Input formats of `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One JSON object a line: `{"id", "text", "metadata", "vector"}`.
    Jsonl,
    /// A header row, a text column, other columns as string metadata.
    Csv,
    /// Little-endian `int32 dim` + `dim` x `f32` per vector; ids are row numbers.
    Fvecs,
}

/// `quiver import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The collection (created if missing).
    pub name: String,
    /// The input file; the format comes from its extension unless `--format` is given.
    pub file: PathBuf,
    /// The input format (default: from the extension; `.csv`, `.fvecs`, else JSON Lines).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Dimension of a new collection (default: the first vector's length, else 384).
    #[arg(long)]
    pub dim: Option<usize>,
    /// The CSV column holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// The CSV column holding the id (default: `id` when present, else the row number).
    #[arg(long)]
    pub id_column: Option<String>,
    /// Records per `add_embeddings` call.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Schema of a new collection.
    #[command(flatten)]
    pub schema: SchemaArgs,
}

/// `quiver search`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("query").required(true).args(["text", "vector"])))]
pub struct SearchArgs {
    /// The collection.
    pub name: String,
    /// Query text.
    #[arg(long)]
    pub text: Option<String>,
    /// Query vector as a JSON array, e.g. `[0.1, 0.2]`.
    #[arg(long)]
    pub vector: Option<String>,
    /// Number of results.
    #[arg(short, long, default_value_t = 4)]
    pub k: usize,
    /// A Milvus filter expression.
    #[arg(long)]
    pub filter: Option<String>,
    /// Rerank for diversity (maximal marginal relevance); no scores are shown.
    #[arg(long)]
    pub mmr: bool,
    /// MMR: candidates fetched before reranking.
    #[arg(long, default_value_t = 20)]
    pub fetch_k: usize,
    /// MMR: 1 = pure relevance, 0 = maximum diversity.
    #[arg(long, default_value_t = 0.5)]
    pub lambda: f32,
}

/// `quiver delete`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ids", "filter"])))]
pub struct DeleteArgs {
    /// The collection.
    pub name: String,
    /// Ids to delete.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub ids: Vec<String>,
    /// Delete every record matching this filter expression.
    #[arg(long)]
    pub filter: Option<String>,
}

/// `quiver bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Documents in the searched collection.
    #[arg(long, default_value_t = 1000)]
    pub docs: usize,
    /// Work in this directory instead of a temporary one.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Run each row this many times and report the median.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The tokio runtime of the async rows (current: one event loop, like the tutorial's
    /// asyncio).
    #[arg(long, value_enum, default_value_t = crate::bench::RuntimeFlavor::Current)]
    pub runtime: crate::bench::RuntimeFlavor,
}
