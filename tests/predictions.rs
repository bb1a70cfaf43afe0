//! Prediction CSV layouts: exact text for each, and clear errors.

use fgssl::predictions::{render, write, PredictionLayout};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn isic2018_submission_columns_follow_the_official_order_whatever_the_class_order() {
    // Class order as a loader might give it (sorted), not the submission's order.
    let classes = s(&["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]);
    let probs = [0.1, 0.2, 0.0, 0.0, 0.5, 0.125, 0.075, /* */ 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let csv = render(PredictionLayout::Isic2018, &s(&["ISIC_0034524", "ISIC_0034525"]), &classes, &probs, None).unwrap();
    assert_eq!(csv, "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_0034524,0.5,0.125,0.2,0.1,0,0,0.075\nISIC_0034525,0,1,0,0,0,0,0\n");
}

#[test]
fn isic2017_uses_the_task_columns_the_classes_provide() {
    let three = s(&["melanoma", "seborrheic_keratosis", "nevus"]);
    let csv = render(PredictionLayout::Isic2017, &s(&["ISIC_0000000"]), &three, &[0.25, 0.5, 0.25], None).unwrap();
    assert_eq!(csv, "image_id,melanoma,seborrheic_keratosis\nISIC_0000000,0.25,0.5\n");
    let sk = s(&["not_seborrheic_keratosis", "seborrheic_keratosis"]);
    let csv = render(PredictionLayout::Isic2017, &s(&["ISIC_0000001"]), &sk, &[0.75, 0.25], None).unwrap();
    assert_eq!(csv, "image_id,seborrheic_keratosis\nISIC_0000001,0.25\n");
}

#[test]
fn aptos_medmnist_and_generic_layouts() {
    let grades = s(&["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]);
    let probs = [0.1, 0.1, 0.6, 0.1, 0.1, /* */ 0.9, 0.025, 0.025, 0.025, 0.025];
    let ids = s(&["000c1434d8d7", "001639a390f0"]);
    assert_eq!(render(PredictionLayout::Aptos2019, &ids, &grades, &probs, None).unwrap(), "id_code,diagnosis\n000c1434d8d7,2\n001639a390f0,0\n");
    assert_eq!(
        render(PredictionLayout::MedMnist, &ids, &grades, &probs, None).unwrap(),
        "index,score_0,score_1,score_2,score_3,score_4\n0,0.1,0.1,0.6,0.1,0.1\n1,0.9,0.025,0.025,0.025,0.025\n"
    );
    let classes = s(&["a,b", "c"]);
    let csv = render(PredictionLayout::Generic, &s(&["x/1.png", "y"]), &classes, &[0.25, 0.75, 1.0, 0.0], Some(&[Some(0), None])).unwrap();
    assert_eq!(csv, "id,label,prediction,\"a,b\",c\nx/1.png,\"a,b\",c,0.25,0.75\ny,,\"a,b\",1,0\n");
}

#[test]
fn layout_follows_the_data_set_format() {
    assert_eq!(PredictionLayout::for_format("ham10000"), PredictionLayout::Isic2018);
    assert_eq!(PredictionLayout::for_format("aptos2019"), PredictionLayout::Aptos2019);
    assert_eq!(PredictionLayout::for_format("imagefolder"), PredictionLayout::Generic);
}

#[test]
fn bad_input_is_a_clear_error_and_nothing_is_written() {
    let e = render(PredictionLayout::Isic2018, &s(&["a"]), &s(&["cat", "dog"]), &[0.5, 0.5], None).unwrap_err();
    assert!(e.to_string().contains("MEL") && e.to_string().contains("cat"), "{e}");
    let e = render(PredictionLayout::Generic, &s(&["a", "b"]), &s(&["x", "y"]), &[0.5, 0.5], None).unwrap_err();
    assert!(e.to_string().contains("2 scores for 2 samples x 2 classes"), "{e}");
    let path = std::env::temp_dir().join(format!("fgssl-pred-{}.csv", std::process::id()));
    assert!(write(&path, PredictionLayout::Generic, &s(&["a"]), &s(&["x"]), &[f32::NAN], None).is_err());
    assert!(!path.exists(), "a failed write leaves no file");
    write(&path, PredictionLayout::Generic, &s(&["a"]), &s(&["x"]), &[1.0], None).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,label,prediction,x\na,,x,1\n");
    std::fs::remove_file(&path).unwrap();
}
