"""REGEN as a Hugging Face dataset: reader, splits, builder, export and synthetic data."""

HOMEPAGE = (
    "https://www.kaggle.com/datasets/googleai/regen-reviews-enhanced-with-generative-narratives"
)
CITATION = """@article{su2025regen,
  title   = {{REGEN}: A Dataset and Benchmarks with Natural Language Critiques and Narratives},
  author  = {Su, Kun and Sayana, Krishna and Pham, Hubert and Pine, James and Vasilevski, Yuri and
             Vasudeva, Raghavendra and Kyriakidi, Marialena and Hebert, Liam and Jash, Ambarish and
             Subbiah, Anushya and Sodhi, Sukhdeep},
  journal = {arXiv preprint arXiv:2503.11924},
  year    = {2025},
  url     = {https://arxiv.org/abs/2503.11924}
}

@article{sayana2024beyond,
  title   = {Beyond Retrieval: Generating Narratives in Conversational Recommender Systems},
  author  = {Sayana, Krishna and Vasudeva, Raghavendra and Vasilevski, Yuri and Su, Kun and
             Hebert, Liam and Pine, James and Pham, Hubert and Jash, Ambarish and Sodhi, Sukhdeep},
  journal = {arXiv preprint arXiv:2410.16780},
  year    = {2024},
  url     = {https://arxiv.org/abs/2410.16780}
}"""
