"""The analyses the QLoRA paper did by hand, as functions over the store's tidy judgments table:
position and length bias (:mod:`.bias`), agreement between judges (:mod:`.agreement`), lemons
(:mod:`.lemons`); :mod:`.judgments` loads and selects, :mod:`.report` prints, saves and plots."""
