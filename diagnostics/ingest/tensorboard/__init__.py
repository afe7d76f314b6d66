"""TensorBoard event files -> scalar arrays, fast, without TensorFlow or protobuf objects.

Why a reader of our own: TensorBoard's ``EventAccumulator`` (and tbparse, which sits on it) parses
every record into Python protobuf objects, samples 10,000 points per tag unless told otherwise, and
checks CRCs in pure Python: a million scalars take 15-20 s.  Here:

1. **Framing.**  An event file is a TFRecord stream: ``uint64 length | uint32 masked CRC of length |
   payload | uint32 masked CRC of payload``.  The walk is sequential, but one writer's scalar
   records repeat a short cycle of lengths (one record per tag per step), so after a few records
   the walker predicts the next thousands of record offsets from the cycle and *verifies* each
   predicted length with numpy.  Each prediction starts at a verified record boundary, so an
   accepted prefix is exactly what a sequential walk would find; the first mismatch falls back to
   the plain walk.
2. **Length CRCs are checked, payload CRCs are not (by default).**  The 4-byte CRC over each length
   is verified for all records at once with a vectorised CRC-32C: a flipped length would otherwise
   send the walk into garbage.  When it fails we resynchronise at the next offset whose length CRC
   is valid, and count one corrupt record.  Payload CRCs are skipped because checking them costs
   more than decoding (they cover every byte) while a damaged payload is still caught when it no
   longer parses; ``verify_payload_crc=True`` checks them too.
3. **Decoding.**  Scalar events written by ``SummaryWriter``/tensorboardX share one wire layout
   (``wall_time``, ``step``, one ``Summary.Value`` with ``tag`` and ``simple_value``).  Records of
   that layout are decoded column-wise with numpy (varint steps included); every other record
   goes through a small wire-format decoder that also reads TF2 tensor scalars (``float_val``,
   ``double_val``, ``int_val``, ``int64_val``, ``half_val``, ``bool_val``, ``tensor_content``
   of any numeric dtype) and skips histograms, images, audio, text and graphs cheaply.
4. **Bad input.**  A truncated last record (a run still being written) ends the read at the last
   complete record and is reported as ``truncated``; a record that does not parse is skipped and
   counted.

The file is read in blocks so memory stays near the size of the result.

The reader is split by job: :mod:`.crc` (CRC-32C), :mod:`.framing` (TFRecord framing, cycle
prediction, resync), :mod:`.columns` (the result and its growable columns), :mod:`.scalar_layout`
(the vectorised decode of the common scalar layout), :mod:`.wire` (the generic protobuf decoder)
and :mod:`.reader` (:func:`read_events`, which drives them block by block).  Names with a leading
underscore are shared inside this package only.
"""

from __future__ import annotations

from trainfix.diagnostics.ingest.tensorboard.columns import EventScalars
from trainfix.diagnostics.ingest.tensorboard.crc import masked_crc32c, masked_crc32c_rows
from trainfix.diagnostics.ingest.tensorboard.framing import MAX_PERIOD
from trainfix.diagnostics.ingest.tensorboard.reader import BLOCK_BYTES, read_events

__all__ = ["BLOCK_BYTES", "MAX_PERIOD", "EventScalars", "masked_crc32c", "masked_crc32c_rows", "read_events"]
