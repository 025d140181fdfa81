"""Checkpoint converters: original LLaVA-1.5 and Shikra releases -> the project's format.

``python -m genixer.convert llava-original SRC --vision-tower CLIP --out DST``
``python -m genixer.convert shikra DELTA --base VICUNA --vision-tower CLIP --out DST``

Key maps live in :mod:`genixer.convert.keymaps`; folders are read and written tensor by
tensor in safetensors (:mod:`genixer.convert.checkpoint_io`); pickles are refused.
llava-hf folders and Fuyu / OpenAI CLIP files need no conversion: they load directly
(``genixer.models.vlm.load_vlm``, ``genixer.models.judge.load_judge``,
``genixer.models.clip_filter.load_openai_clip``).
"""
