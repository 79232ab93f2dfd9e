"""REGEN as a Hugging Face dataset: reader, splits, builder, export and synthetic data."""

HOMEPAGE = (
    "https://www.kaggle.com/datasets/googleai/regen-reviews-enhanced-with-generative-narratives"
)
CITATION = """@article{su2025regen,
  title  = {{REGEN}: A Dataset and Benchmarks with Natural Language Critiques and Narratives},
  author = {Su, Kun and Sayana, Krishna and Pham, Hubert and Pine, James and Vasilevski, Yuri and
            Vasudeva, Raghavendra and Kyriakidi, Marialena and Hebert, Liam and Jash, Ambarish and
            Subbiah, Anushya and Sodhi, Sukhdeep},
  year   = {2025}
}"""
