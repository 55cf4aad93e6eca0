"""The sample / batch layout, written down once.

A **sample** (one row of the cohort) is a dict; a **batch** is the same dict with a
leading batch dimension ``B`` (made by :func:`torch.utils.data.default_collate`).
Every key is always present, so batches never change structure when a modality is
missing; what is missing is said by the masks.

=================  ==========================  =========================================
key                sample                       meaning
=================  ==========================  =========================================
``id``             ``str``                      sample id (``cohort.id_column`` or row index)
``patient``        ``str``                      patient key (``cohort.patient_column``)
``image``          ``float32 [C, *S]``          ``S = (H, W)`` or ``(D, H, W)``; zeros if missing
``image_view2``    ``float32 [C, *S]``          second augmented view (SSL datasets only)
``num``            ``float32 [F_num]``          scaled numeric features; 0 where missing
``num_missing``    ``bool [F_num]``             True where the numeric value is missing (NaN)
``cat``            ``int64 [F_cat]``            category index; 0 = unknown/unseen, 1.. = vocab
``cat_missing``    ``bool [F_cat]``             True where the categorical value is missing
``omics``          ``float32 [G]``              scaled omics values (G columns); 0 where missing
``omics_missing``  ``bool [G]``                 True where the omics value is missing
``modality_mask``  ``bool [2]``                 (has_image, has_table); table = clinical or omics
``label``          ``float32 [K]``              ``cohort.label_matrix`` row, NaN -> 0: binary K = 1
                                                (0/1); multiclass one-hot over K classes (losses
                                                use ``label_index``); multilabel K findings (0/1)
``label_index``    ``int64 []``                 class index for binary/multiclass; -1 if unlabelled
``has_label``      ``bool []``                  False for unlabelled rows (multilabel: any finding
                                                unknown)
=================  ==========================  =========================================

Widths ``F_num``, ``F_cat``, ``G`` with zero columns give empty tensors, never a
missing key. ``MODALITIES`` names the columns of ``modality_mask``.
"""

MODALITIES = ("image", "table")
IMAGE, TABLE = 0, 1

# the table tensors, in the argument order of the encoders' ``forward`` (the one copy of this tuple)
TABLE_KEYS = ("num", "num_missing", "cat", "cat_missing", "omics", "omics_missing")
# every model input, in the argument order of ``FusedClassifier.forward`` (captum perturbs any of them)
INPUT_KEYS = ("image",) + TABLE_KEYS + ("modality_mask",)

SAMPLE_KEYS = (
    "id", "patient", "image", "num", "num_missing", "cat", "cat_missing",
    "omics", "omics_missing", "modality_mask", "label", "label_index", "has_label",
)
